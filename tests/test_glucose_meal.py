"""Glucose means what it was: the meal mark a device sends (BLE Glucose Measurement Context, the
SenML `meal` field over MQTT, a line profile's `meal`/`meal_group`) is kept with the reading, and only
a fasting value fills 空腹血糖值 (FBG); a postprandial or random one never does."""
import json
from datetime import date, timedelta, timezone

import pytest

from device_drivers.lines import profile
from device_drivers.mqtt import senml
from edge.core import devices, measuring
from edge.core.followup import prefill, records
from edge.core.ingest import ingest
from edge.core.reading import Reading
from conftest import SetClock
from tests.test_workbench_residents import NOW, make


def test_senml_meal_field_is_kept_and_a_bad_one_refused():
    doc = [{"bt": 1763884800, "n": "glucose", "u": "mmol/L", "v": 8.4, "meal": "postprandial"}]
    (r,) = senml.parse("glu-1", json.dumps(doc).encode(), now=NOW)
    assert r.meta["meal"] == "postprandial"
    (r,) = senml.parse("glu-1", json.dumps([dict(doc[0], meal="random")]).encode(), now=NOW)
    assert r.meta["meal"] == "casual"
    with pytest.raises(senml.SenMLError, match="meal"):
        senml.parse("glu-1", json.dumps([dict(doc[0], meal="lunch")]).encode(), now=NOW)
    with pytest.raises(senml.SenMLError, match="glucose"):
        senml.parse("bp-1", json.dumps([{"n": "8480-6", "u": "mm[Hg]", "v": 120, "meal": "fasting"}]).encode(),
                    now=NOW)


def test_line_profile_meal_group_and_fixed_meal():
    p = profile.from_dict({"profile": {"kind": "glucose"}, "line": [
        {"pattern": r"^GLU (?P<g>[\d.]+) (?P<m>\w+)$", "values": {"g": {"code": "2339-0", "unit": "mmol/L"}},
         "meal_group": "m"},
        {"pattern": r"^FBG (?P<g>[\d.]+)$", "values": {"g": {"code": "2339-0", "unit": "mmol/L"}},
         "meal": "fasting"}]})
    (pc,) = profile.parse_line(p, b"GLU 9.1 PC", device_id="m", received=NOW, tz=timezone.utc)
    (fast,) = profile.parse_line(p, b"FBG 5.6", device_id="m", received=NOW, tz=timezone.utc)
    assert (pc.meta["meal"], fast.meta["meal"]) == ("postprandial", "fasting")
    with pytest.raises(profile.ProfileError, match="meal"):
        profile.from_dict({"line": [{"pattern": "(?P<g>.)", "values": {"g": {"code": "2339-0", "unit": "mmol/L"}},
                                     "meal": "lunch"}]})


@pytest.mark.parametrize("meta,fills", [
    ({"meal": "fasting"}, True),
    ({"context": {"meal": "fasting"}}, True),                   # BLE context merged by the GATT session
    ({"meal": "postprandial"}, False),
    ({"context": {"meal": "postprandial"}}, False),
    ({"meal": "casual"}, False),
    ({}, False),                                                 # unmarked: offered, the doctor confirms
])
def test_only_a_fasting_glucose_fills_fbg(node, meta, fills):
    s = node.store
    rid = make(s, name="张三", sex="1", birth_date="1950-01-01")
    records.enrol(s, resident_id=rid, disease="diabetes", since=date(2025, 1, 1), actor="doc", at=NOW)
    devices.add(s, "glu", kind="glucose", now=NOW)
    measuring.start(s, rid, now=NOW, actor="doc")
    t = NOW + timedelta(minutes=1)
    ingest(s, [Reading("glu", "2339-0", 9.4, "mmol/L", "mqtt", device_time=t, meta=meta)], clock=SetClock(t))
    p = prefill.build(s, resident_id=rid, form="diabetes", today=date(2026, 11, 23), tz="Asia/Shanghai")
    assert (p.values.get("fbg") == 9.4) is fills
    assert [o["value"] for o in p.offered if o["field"] == "fbg"] == [9.4]      # shown either way
