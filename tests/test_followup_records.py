"""Follow-ups on a real SQLite store: pre-filled from device readings, saved as versions with their
outbox and audit entries in the same transaction; a correction is a new version, both audited."""
import json
from datetime import date, datetime, timezone

import pytest

from edge.core import audit, devices, measuring, outbox
from edge.core.errors import ValidationError
from edge.core.followup import prefill, records
from edge.core.followup.validation import validate
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.core.store import Store
from conftest import SetClock

TZ = "Asia/Shanghai"
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=timezone.utc)        # 10:00 in Shanghai
TODAY = date(2026, 3, 10)


def add_resident(store, rid, birth="1960-05-01"):
    with store.atomic() as conn:
        conn.execute("INSERT INTO residents (id, name, birth_date, sex, created_at, updated_at)"
                     " VALUES (?,?,?,?,?,?)", (rid, "张三" + rid, birth, "1", "2026-01-01T00:00:00Z",
                                               "2026-01-01T00:00:00Z"))


def measure(store, rid, device, pairs, at=NOW):
    """Readings from a device bound to the resident, in a measuring session of this visit, through
    the real ingest()."""
    if devices.get(store, device) is None:
        devices.add(store, device, kind="bp", transport="demo", resident_id=rid, now=at)
    measuring.start(store, rid, now=at, actor="doc")
    rs = [Reading(device, code, value, unit, "demo", device_time=at) for code, value, unit in pairs]
    return ingest(store, rs, clock=SetClock(NOW))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "edge.db")
    add_resident(s, "R1")
    yield s
    s.close()


def test_form_opens_prefilled_with_todays_readings_and_carried_forward_lifestyle(store):
    records.save(store, resident_id="R1", form="hypertension", actor="doc", at=NOW.replace(month=1),
                 values={"visit_date": "2026-01-05", "visit_mode": "1", "sbp": 150, "dbp": 92,
                         "classification": "2", "next_visit_date": "2026-01-19", "smoking": 5,
                         "salt": "2", "medications": [{"name": "氨氯地平", "times_per_day": 1, "dose_mg": 5.0}],
                         "height": 160.0})
    measure(store, "R1", "bp1", [("8480-6", 128, "mm[Hg]"), ("8462-4", 82, "mm[Hg]"), ("8867-4", 72, "/min"),
                                 ("29463-7", 64, "kg")])
    p = prefill.build(store, resident_id="R1", form="hypertension", today=TODAY, tz=TZ)
    v = p.values
    assert (v["sbp"], v["dbp"], v["heart_rate"], v["weight"]) == (128, 82, 72, 64.0)
    assert set(p.sources) == {"sbp", "dbp", "heart_rate", "weight"}
    assert v["height"] == 160.0 and v["bmi"] == 25.0                 # 64 / 1.6^2
    assert v["smoking"] == 5 and v["salt"] == "2" and v["medications"][0]["name"] == "氨氯地平"
    assert v["classification"] == "1" and v["next_step"] == "1"    # 128/82 at 65: controlled
    assert v["next_visit_date"] == "2026-06-10" and v["visit_date"] == "2026-03-10"
    flat = prefill.flat(v)
    assert flat["med_1_name"] == "氨氯地平" and flat["med_1_dose"] == "5"


def test_yesterdays_reading_is_not_today(store):
    measure(store, "R1", "bp1", [("8480-6", 128, "mm[Hg]")], at=datetime(2026, 3, 9, 15, 59, tzinfo=timezone.utc))
    p = prefill.build(store, resident_id="R1", form="hypertension", today=TODAY, tz=TZ)
    assert "sbp" not in p.values                                      # 23:59 on the 9th in Shanghai


def _routine(store, **extra):
    p = prefill.build(store, resident_id="R1", form="hypertension", today=TODAY, tz=TZ)
    v = validate("hypertension", {**prefill.flat(p.values), **extra}, today=TODAY)
    assert v.ok, v.errors
    return p, v


def test_save_writes_row_version_outbox_and_audit_together(store):
    measure(store, "R1", "bp1", [("8480-6", 128, "mm[Hg]"), ("8462-4", 82, "mm[Hg]")])
    p, v = _routine(store)
    saved = records.save(store, resident_id="R1", form="hypertension", values=v.values, actor="doc",
                         at=NOW, sources=p.sources, suggestions={"classification": "1"})
    row = store.one("SELECT * FROM followups WHERE id = ?", (saved.id,))
    assert (row["version"], row["sbp"], row["bp_source"], row["urgent"]) == (1, 128, "device", 0)
    out = store.query("SELECT kind, version, priority, payload FROM outbox WHERE record_id = ?", (saved.id,))
    assert [(o["kind"], o["version"], o["priority"]) for o in out] == [("followup", 1, outbox.PRIORITY_BULK)]
    assert json.loads(out[0]["payload"])["values"]["sbp"] == 128
    assert [h["action"] for h in audit.history(store.conn, "followup", saved.id)] == ["followup.create"]


def test_a_typed_over_device_value_is_recorded_as_typed(store):
    measure(store, "R1", "bp1", [("8480-6", 128, "mm[Hg]"), ("8462-4", 82, "mm[Hg]")])
    p, v = _routine(store, sbp="132")
    saved = records.save(store, resident_id="R1", form="hypertension", values=v.values, actor="doc",
                         at=NOW, sources=p.sources)
    assert store.scalar("SELECT bp_source FROM followups WHERE id = ?", (saved.id,)) == "typed"
    assert set(records.get(store, saved.id)["sources"]) == {"dbp"}   # only the DBP is still the device's


def test_correction_is_a_new_version_and_the_audit_shows_both(store):
    p, v = _routine(store, sbp="128", dbp="82", classification="1", next_visit_date="2026-06-10")
    first = records.save(store, resident_id="R1", form="hypertension", values=v.values, actor="doc", at=NOW)
    fixed = dict(v.values, dbp=84)
    with pytest.raises(ValidationError, match="reason"):
        records.save(store, resident_id="R1", form="hypertension", values=fixed, actor="doc", at=NOW,
                     followup_id=first.id)
    second = records.save(store, resident_id="R1", form="hypertension", values=fixed, actor="doc2", at=NOW,
                          followup_id=first.id, reason="舒张压抄错")
    assert (second.id, second.version) == (first.id, 2)
    assert [x["values"]["dbp"] for x in records.versions(store, first.id)] == [82, 84]
    assert records.get(store, first.id, version=1)["values"]["dbp"] == 82
    assert store.scalar("SELECT dbp FROM followups WHERE id = ?", (first.id,)) == 84
    hist = audit.history(store.conn, "followup", first.id)
    assert [h["action"] for h in hist] == ["followup.create", "followup.correct"]
    assert hist[1]["before"]["values"]["dbp"] == 82 and hist[1]["after"]["values"]["dbp"] == 84
    assert hist[1]["actor"] == "doc2" and hist[1]["after"]["reason"] == "舒张压抄错"
    assert [r["version"] for r in store.query("SELECT version FROM outbox WHERE kind='followup'"
                                              " AND record_id = ? ORDER BY seq", (first.id,))] == [1, 2]
    assert audit.verify(store.conn).ok
    with pytest.raises(Exception, match="never changes"):
        with store.atomic() as conn:
            conn.execute("UPDATE followup_versions SET data = '{}' WHERE followup_id = ?", (first.id,))


def test_urgent_referral_goes_to_the_outbox_at_urgent_priority(store):
    measure(store, "R1", "bp1", [("8480-6", 182, "mm[Hg]"), ("8462-4", 100, "mm[Hg]")])
    p, v = _routine(store, referral_reason="血压≥180", referral_facility="县医院心内科")
    assert v.values["next_step"] == "4" and [a.code for a in p.suggestions["alerts"]] == ["bp"]
    saved = records.save(store, resident_id="R1", form="hypertension", values=v.values, actor="doc", at=NOW,
                         sources=p.sources)
    assert saved.urgent
    urgent = store.query("SELECT kind, payload FROM outbox WHERE priority = ?", (outbox.PRIORITY_URGENT,))
    assert [u["kind"] for u in urgent] == ["referral_alert"]
    assert json.loads(urgent[0]["payload"])["referral_facility"] == "县医院心内科"
    # the same alert is not sent again when an unrelated field is corrected
    records.save(store, resident_id="R1", form="hypertension", values=dict(v.values, smoking=0), actor="doc",
                 at=NOW, followup_id=saved.id, reason="吸烟量补录", sources=p.sources)
    assert store.scalar("SELECT count(*) FROM outbox WHERE priority = ?", (outbox.PRIORITY_URGENT,)) == 1


def test_second_uncontrolled_visit_proposes_referral(store):
    records.save(store, resident_id="R1", form="hypertension", actor="doc", at=NOW,
                 values={"visit_date": "2026-02-20", "visit_mode": "1", "sbp": 152, "dbp": 95,
                         "classification": "2", "next_step": "2", "next_visit_date": "2026-03-06"})
    measure(store, "R1", "bp1", [("8480-6", 155, "mm[Hg]"), ("8462-4", 96, "mm[Hg]")])
    p = prefill.build(store, resident_id="R1", form="hypertension", today=TODAY, tz=TZ)
    assert (p.values["classification"], p.values["next_step"], p.values["next_visit_date"]) == \
        ("2", "3", "2026-03-24")
    assert p.suggestions["refer"] is True


def test_enrol_and_void(store):
    records.enrol(store, resident_id="R1", disease="hypertension", since=date(2025, 1, 1), actor="doc", at=NOW)
    assert records.management(store, "R1") == {"hypertension": "2025-01-01"}
    p, v = _routine(store, sbp="128", dbp="82", classification="1", next_visit_date="2026-06-10")
    s = records.save(store, resident_id="R1", form="hypertension", values=v.values, actor="doc", at=NOW)
    records.void(store, s.id, reason="录错病人", actor="doc", at=NOW)
    assert records.last_visit(store, "R1", "hypertension") is None
    with pytest.raises(Exception, match="never deleted"):
        with store.atomic() as conn:
            conn.execute("DELETE FROM followups")
