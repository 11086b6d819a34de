"""Health checks on a real SQLite store: pre-filled from the resident's own readings of the check
day (BP per arm chosen when measuring), saved as versions with the reading of each field, the
outbox record and the audit entry in the same transaction."""
import json
from datetime import timedelta, timezone

import pytest

from edge.core import audit, devices, measuring
from edge.core.errors import ValidationError
from edge.core.healthcheck import prefill, records
from edge.core.healthcheck.validation import validate
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.core.store import Store

from checkday_support import CHECK_DAY as TODAY, NOW, TZ, add_resident
from conftest import SetClock


def measure(store, rid, device, pairs, at, arm=None):
    """The clinic's (unbound) device measures the resident whose session is open."""
    if devices.get(store, device) is None:
        devices.add(store, device, kind="bp", transport="demo", now=at)
    measuring.start(store, rid, now=at, actor="doc", switch=True, arm=arm)
    rs = [Reading(device, code, value, unit, "demo", device_time=at) for code, value, unit in pairs]
    ingest(store, rs, clock=SetClock(at))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "edge.db")
    add_resident(s, "R1", name="李R1", birth="1950-05-01")
    add_resident(s, "R2", name="李R2", birth="1950-05-01")
    yield s
    s.close()


def test_prefill_puts_each_bp_on_its_arm_and_takes_only_the_residents_readings(store):
    t = NOW
    measure(store, "R1", "bp1", [("8480-6", 142, "mm[Hg]"), ("8462-4", 88, "mm[Hg]"), ("8867-4", 76, "/min")],
            t, arm="left")
    measure(store, "R1", "bp1", [("8480-6", 136, "mm[Hg]"), ("8462-4", 84, "mm[Hg]")], t + timedelta(minutes=2),
            arm="right")
    measure(store, "R2", "bp1", [("8480-6", 118, "mm[Hg]"), ("8462-4", 70, "mm[Hg]")], t + timedelta(minutes=4),
            arm="left")
    measure(store, "R1", "scale1", [("29463-7", 62.5, "kg"), ("8302-2", 158, "cm"), ("8280-0", 84, "cm")],
            t + timedelta(minutes=6))
    p = prefill.build(store, resident_id="R1", today=TODAY, tz=TZ)
    v = p.values
    assert (v["bp_left_sbp"], v["bp_left_dbp"], v["bp_right_sbp"], v["bp_right_dbp"]) == (142, 88, 136, 84)
    assert (v["pulse"], v["weight"], v["height"], v["waist"], v["bmi"]) == (76, 62.5, 158.0, 84.0, 25.0)
    assert set(p.sources) == {"bp_left_sbp", "bp_left_dbp", "bp_right_sbp", "bp_right_dbp", "pulse", "weight",
                              "height", "waist"}
    assert p.computed == ["bmi"] and p.age == 76
    assert p.readings["waist"]["device_id"] == "scale1"
    other = prefill.build(store, resident_id="R2", today=TODAY, tz=TZ)
    assert (other.values["bp_left_sbp"], other.values.get("bp_right_sbp")) == (118, None)


def test_bp_of_a_session_with_no_arm_is_offered_not_filled(store):
    measure(store, "R1", "bp1", [("8480-6", 142, "mm[Hg]"), ("8462-4", 88, "mm[Hg]")], NOW)
    p = prefill.build(store, resident_id="R1", today=TODAY, tz=TZ)
    assert "bp_left_sbp" not in p.values and "bp_right_sbp" not in p.values
    assert sorted(r["value"] for r in p.unplaced_bp) == [88, 142]


def test_another_arm_for_the_same_resident_opens_a_new_session(store):
    a = measuring.start(store, "R1", now=NOW, actor="doc", arm="left")
    b = measuring.start(store, "R1", now=NOW + timedelta(minutes=1), actor="doc", arm="right")
    assert a["id"] != b["id"] and b["arm"] == "right"
    with pytest.raises(ValidationError):
        measuring.start(store, "R1", now=NOW, actor="doc", arm="both")


def test_save_keeps_device_sources_outbox_audit_and_typed_edits_lose_their_source(store):
    measure(store, "R1", "bp1", [("8480-6", 142, "mm[Hg]"), ("8462-4", 88, "mm[Hg]")], NOW, arm="left")
    p = prefill.build(store, resident_id="R1", today=TODAY, tz=TZ)
    raw = {**{k: str(x) for k, x in p.values.items()}, "bp_left_dbp": "86",      # the doctor re-typed DBP
           "selfcare_meal": "1", "selfcare_grooming": "1", "selfcare_dressing": "1", "selfcare_toilet": "2",
           "selfcare_activity": "3"}
    v = validate(raw, today=TODAY, age=p.age)
    assert v.ok, v.errors
    saved = records.save(store, resident_id="R1", values=v.values, sources=p.sources, actor="doc", at=NOW)
    assert saved.sources == {"bp_left_sbp": p.sources["bp_left_sbp"]}
    assert saved.complete is False
    row = store.one("SELECT * FROM health_checks WHERE id = ?", (saved.id,))
    assert (row["year"], row["selfcare_total"], row["selfcare_band"]) == (2026, 6, "2")
    out = store.one("SELECT kind, record_id, version, payload FROM outbox WHERE record_id = ?", (saved.id,))
    assert (out["kind"], out["version"]) == ("health_check", 1)
    assert json.loads(out["payload"])["sources"] == saved.sources
    assert records.readings_used(store, saved.id, 1)["bp_left_sbp"]["value"] == 142
    assert [e["action"] for e in audit.history(store.conn, "health_check", saved.id)] == ["health_check.create"]


def test_a_source_of_another_arm_or_resident_is_dropped(store):
    measure(store, "R2", "bp1", [("8480-6", 142, "mm[Hg]"), ("8462-4", 88, "mm[Hg]")], NOW, arm="right")
    rid = store.one("SELECT id FROM readings WHERE code = '8480-6'")["id"]
    values = validate({"check_date": "2026-12-03", "bp_right_sbp": "142", "bp_right_dbp": "80"}, today=TODAY).values
    saved = records.save(store, resident_id="R1", values=values, sources={"bp_right_sbp": rid}, actor="doc", at=NOW)
    assert saved.sources == {}
    values2 = validate({"check_date": "2026-12-03", "bp_left_sbp": "142", "bp_left_dbp": "80"}, today=TODAY).values
    saved2 = records.save(store, resident_id="R2", values=values2, sources={"bp_left_sbp": rid}, actor="doc", at=NOW)
    assert saved2.sources == {}


def test_correction_is_a_new_version_with_a_reason(store):
    values = validate({"check_date": "2026-12-03"}, today=TODAY).values
    first = records.save(store, resident_id="R1", values=values, actor="doc", at=NOW)
    with pytest.raises(ValidationError):
        records.save(store, resident_id="R1", values=values, actor="doc", at=NOW, check_id=first.id)
    second = records.save(store, resident_id="R1", values={**values, "pulse": 70}, actor="doc", at=NOW,
                          check_id=first.id, reason="漏填脉率")
    assert second.version == 2
    assert records.get(store, first.id, 1)["values"]["pulse"] is None
    assert records.get(store, first.id)["values"]["pulse"] == 70
    with pytest.raises(Exception):
        with store.atomic() as conn:
            conn.execute("UPDATE health_check_versions SET data = '{}'")


def test_urine_analyser_lines_fill_the_urine_routine_with_their_source(store):
    from device_drivers.lines import profile
    p = profile.load("urine-strip-reader-line")
    devices.add(store, "urine1", kind="analyser", transport="lines", now=NOW)
    measuring.start(store, "R1", now=NOW, actor="doc")
    lines = [b"No.0007 2026-12-03 09:05", b"LEU  -", b"PRO  +-  0.15g/L", b"BLD  2+  80Cell/uL", b"KET  -",
             b"GLU  3+  28mmol/L", b"SG   1.015"]
    readings = [r for line in lines for r in profile.parse_line(p, line, device_id="urine1", received=NOW,
                                                                 tz=timezone.utc)]
    ingest(store, readings, clock=SetClock(NOW))
    pre = prefill.build(store, resident_id="R1", today=TODAY, tz=TZ)
    assert {k: pre.values[k] for k in ("urine_protein", "urine_glucose", "urine_ketone", "urine_blood")} == {
        "urine_protein": "+-", "urine_glucose": "3+", "urine_ketone": "-", "urine_blood": "2+"}
    v = validate({**{k: str(x) for k, x in pre.values.items()}}, today=TODAY)
    saved = records.save(store, resident_id="R1", values=v.values, sources=pre.sources, actor="doc", at=NOW)
    assert set(saved.sources) == {"urine_protein", "urine_glucose", "urine_ketone", "urine_blood"}
    assert records.readings_used(store, saved.id, 1)["urine_blood"]["device_id"] == "urine1"


def test_a_township_analysers_result_matched_by_id_number_fills_the_lab_fields(store):
    with store.atomic() as conn:
        conn.execute("UPDATE residents SET id_number = '11010519491231002X' WHERE id = 'R1'")
    devices.add(store, "afinion", kind="analyser", transport="astm", now=NOW)
    old = NOW - timedelta(days=120)
    ingest(store, [Reading("afinion", "4548-4", 7.9, "%", "astm", device_time=old,
                           meta={"patient_id": "11010519491231002X"})], clock=SetClock(old))
    ingest(store, [Reading("afinion", "4548-4", 6.8, "%", "astm", device_time=NOW - timedelta(days=20),
                           meta={"patient_id": "11010519491231002X"})], clock=SetClock(NOW - timedelta(days=20)))
    pre = prefill.build(store, resident_id="R1", today=TODAY, tz=TZ)
    assert pre.values["hba1c"] == 6.8 and pre.readings["hba1c"]["transport"] == "astm"
    assert "hba1c" not in prefill.build(store, resident_id="R2", today=TODAY, tz=TZ).values


def test_the_outbox_record_is_one_the_hub_accepts_even_with_every_text_full(store):
    from edge.core.healthcheck import fields
    from sync.hub.service import record_problem
    raw = {"check_date": "2026-12-03"}
    raw.update({f.name: "字" * f.max_length for f in fields.FIELDS if f.kind == "text"})
    v = validate(raw, today=TODAY)
    assert v.ok, v.errors
    saved = records.save(store, resident_id="R1", values=v.values, actor="doc", at=NOW)
    out = store.one("SELECT kind, record_id, version, payload FROM outbox WHERE record_id = ?", (saved.id,))
    assert record_problem({"kind": out["kind"], "id": out["record_id"], "version": out["version"],
                           "payload": json.loads(out["payload"])}) is None


def test_readings_assigned_from_the_inbox_fill_the_check_like_live_ones(store):
    """A scale reading that arrived with no session open waits in the inbox; once the doctor assigns it
    to the resident it fills that resident's 健康体检表 with its source (a BP has no arm: offered)."""
    devices.add(store, "scale1", kind="scale", transport="mqtt", now=NOW)
    ingest(store, [Reading("scale1", "29463-7", 63.4, "kg", "mqtt", device_time=NOW),
                   Reading("scale1", "8480-6", 141, "mm[Hg]", "mqtt", device_time=NOW)], clock=SetClock(NOW))
    yesterday = NOW - timedelta(days=1)
    ingest(store, [Reading("scale1", "8302-2", 160.0, "cm", "mqtt", device_time=yesterday)], clock=SetClock(yesterday))
    waiting = [r["id"] for r in store.query("SELECT id FROM readings WHERE resident_id IS NULL")]
    assert measuring.assign(store, waiting, "R1", now=NOW, actor="doc") == 3
    pre = prefill.build(store, resident_id="R1", today=TODAY, tz=TZ)
    weight = store.one("SELECT id FROM readings WHERE code = '29463-7'")["id"]
    assert (pre.values.get("weight"), pre.sources.get("weight")) == (63.4, weight)
    assert "height" not in pre.values                        # assigned, but measured the day before
    assert [r["value"] for r in pre.unplaced_bp] == [141] and "bp_left_sbp" not in pre.values
    saved = records.save(store, resident_id="R1", values=validate({"check_date": "2026-12-03", "weight": "63.4"},
                                                                  today=TODAY).values,
                         sources=pre.sources, actor="doc", at=NOW)
    assert saved.sources == {"weight": weight}
    assert "weight" not in prefill.build(store, resident_id="R2", today=TODAY, tz=TZ).values
