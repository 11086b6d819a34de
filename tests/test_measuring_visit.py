"""A measuring session belongs to one visit, on a real SQLite store through the real ingest():
it ends when the visit's form is saved, when the doctor confirms measuring someone else, by 结束测量
and at its timeout; the form is filled only from its readings (BP: the mean of two, with the reading
ids saved); whatever arrives with no session open goes to the inbox, never onto a saved visit."""
from datetime import date, timedelta

import pytest

from edge.core import devices, measuring
from edge.core.followup import prefill, records
from edge.core.followup.validation import validate
from edge.core.ingest import ingest
from edge.core.reading import Reading
from conftest import SetClock
from tests.test_workbench_residents import NOW, make

TZ = "Asia/Shanghai"
TODAY = date(2026, 11, 23)        # NOW is 16:00 in Shanghai


def bp(s, sys_, dia, minutes, pulse=70):
    t = NOW + timedelta(minutes=minutes)
    return ingest(s, [Reading("clinic-bp", "8480-6", sys_, "mm[Hg]", "mqtt", device_time=t),
                      Reading("clinic-bp", "8462-4", dia, "mm[Hg]", "mqtt", device_time=t),
                      Reading("clinic-bp", "8867-4", pulse, "/min", "mqtt", device_time=t)], clock=SetClock(t))


def patient(s, name, birth="1950-01-01"):
    rid = make(s, name=name, sex="1", birth_date=birth)
    records.enrol(s, resident_id=rid, disease="hypertension", since=date(2025, 1, 1), actor="doc", at=NOW)
    return rid


def save(s, rid, minutes, **typed):
    p = prefill.build(s, resident_id=rid, form="hypertension", today=TODAY, tz=TZ)
    raw = {**prefill.flat(p.values), "symptoms": "1", **typed}
    v = validate("hypertension", raw, today=TODAY)
    assert v.ok, v.errors
    return p, records.save(s, resident_id=rid, form="hypertension", values=v.values, actor="doc",
                           at=NOW + timedelta(minutes=minutes), sources=p.sources,
                           session_id=p.session["id"] if p.session else None)


@pytest.fixture
def s(node):
    devices.add(node.store, "clinic-bp", kind="bp", now=NOW)
    return node.store


def test_two_visits_on_one_monitor_each_hold_their_own_readings(s):
    a, b = patient(s, "张三"), patient(s, "李四")
    before = bp(s, 150, 95, 0)                                  # nobody measured yet
    measuring.start(s, a, now=NOW + timedelta(minutes=1), actor="doc")
    a1, a2 = bp(s, 132, 84, 2), bp(s, 128, 80, 3)
    pre_a, saved_a = save(s, a, 4)
    between = bp(s, 141, 91, 5)                                 # after A's form was saved
    measuring.start(s, b, now=NOW + timedelta(minutes=6), actor="doc")
    b1 = bp(s, 118, 76, 7)
    _, saved_b = save(s, b, 8)
    after = bp(s, 170, 100, 9)

    assert (pre_a.values["sbp"], pre_a.values["dbp"]) == (130, 82)       # the mean of A's two
    used_a = records.readings_used(s, saved_a.id, 1)
    assert {r["id"] for r in used_a["sbp"]} == {a1[0].id, a2[0].id}
    assert {r["id"] for r in used_a["dbp"]} == {a1[1].id, a2[1].id}
    used_b = records.readings_used(s, saved_b.id, 1)
    assert [r["id"] for r in used_b["sbp"]] == [b1[0].id]
    assert s.scalar("SELECT sbp FROM followups WHERE id = ?", (saved_b.id,)) == 118
    inbox = {r["id"] for g in measuring.inbox(s) for r in g["readings"]}
    assert inbox == {o.id for o in before + between + after}
    ended = s.query("SELECT end_reason, followup_id FROM measuring_sessions ORDER BY id")
    assert ended == [{"end_reason": "saved", "followup_id": saved_a.id},
                     {"end_reason": "saved", "followup_id": saved_b.id}]


def test_starting_another_resident_asks_and_never_steals_the_devices(s):
    a, b = patient(s, "张三"), patient(s, "李四")
    measuring.start(s, a, now=NOW, actor="doc")
    with pytest.raises(measuring.SessionBusy) as busy:
        measuring.start(s, b, now=NOW + timedelta(minutes=1), actor="doc2")
    assert busy.value.session["resident_name"] == "张三"
    assert [o.resident_id for o in bp(s, 130, 80, 2)] == [a, a, a]      # still A's
    measuring.start(s, b, now=NOW + timedelta(minutes=3), actor="doc2", switch=True)
    assert [o.resident_id for o in bp(s, 120, 70, 4)] == [b, b, b]
    assert s.scalar("SELECT end_reason FROM measuring_sessions WHERE resident_id = ?", (a,)) == "switched"
    # A's form still opens with A's reading only, B's with B's only
    pa = prefill.build(s, resident_id=a, form="hypertension", today=TODAY, tz=TZ)
    pb = prefill.build(s, resident_id=b, form="hypertension", today=TODAY, tz=TZ)
    assert (pa.values["sbp"], pb.values["sbp"]) == (130, 120)


def test_after_end_or_timeout_readings_go_to_the_inbox_and_a_new_form_starts_empty(s):
    a = patient(s, "张三")
    measuring.start(s, a, minutes=5, now=NOW, actor="doc")
    bp(s, 130, 80, 1)
    measuring.stop(s, now=NOW + timedelta(minutes=2), actor="doc")
    assert [o.resident_id for o in bp(s, 131, 81, 3)] == [None, None, None]
    _, saved = save(s, a, 4)
    assert s.scalar("SELECT sbp FROM followups WHERE id = ?", (saved.id,)) == 130
    second = prefill.build(s, resident_id=a, form="hypertension", today=TODAY, tz=TZ)
    assert "sbp" not in second.values and second.session is None        # that session is used
    measuring.start(s, a, minutes=5, now=NOW + timedelta(minutes=10), actor="doc")
    assert [o.resident_id for o in bp(s, 140, 90, 16)] == [None, None, None]   # timed out


def test_three_readings_differing_by_more_than_5_are_averaged_and_a_typed_value_is_typed(s):
    a = patient(s, "张三")
    measuring.start(s, a, now=NOW, actor="doc")
    bp(s, 150, 90, 1), bp(s, 140, 86, 2), bp(s, 131, 84, 3)      # last two differ by 9: a third counts
    p = prefill.build(s, resident_id=a, form="hypertension", today=TODAY, tz=TZ)
    assert (p.values["sbp"], p.values["dbp"]) == (140, 87) and len(p.sources["sbp"]) == 3
    _, saved = save(s, a, 4, sbp="142")                          # the doctor typed over the mean
    f = records.get(s, saved.id)
    assert "sbp" not in f["sources"] and len(f["sources"]["dbp"]) == 3
    assert s.scalar("SELECT bp_source FROM followups WHERE id = ?", (saved.id,)) == "typed"


def test_a_reading_of_another_session_is_not_accepted_as_a_source(s):
    a, b = patient(s, "张三"), patient(s, "李四")
    measuring.start(s, a, now=NOW, actor="doc")
    other = bp(s, 130, 80, 1)
    measuring.start(s, b, now=NOW + timedelta(minutes=2), actor="doc", switch=True)
    p = prefill.build(s, resident_id=b, form="hypertension", today=TODAY, tz=TZ)
    v = validate("hypertension", {**prefill.flat(p.values), "sbp": "130", "dbp": "80", "symptoms": "1",
                                  "classification": "1", "next_visit_date": "2027-02-23"}, today=TODAY)
    with pytest.raises(Exception):                              # A's reading is not B's
        records.save(s, resident_id=a, form="hypertension", values=v.values, actor="doc", at=NOW,
                     sources={"sbp": other[0].id}, session_id=p.session["id"])
    saved = records.save(s, resident_id=b, form="hypertension", values=v.values, actor="doc", at=NOW,
                         sources={"sbp": other[0].id, "dbp": other[1].id}, session_id=p.session["id"])
    assert records.get(s, saved.id)["sources"] == {}
