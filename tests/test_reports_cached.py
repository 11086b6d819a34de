"""The report and the worklist the pages keep between changes (edge/reports/cached.py) equal a
computation from scratch over every record (kpi.compute, worklist.build) after each kind of change
a clinic makes: a new follow-up, a correction, a late (back-dated) follow-up in a closed month, a
void, an ended management, a new enrolment, a corrected management start, a corrected birth date,
a voided resident and new readings. Between changes the kept result is given again (not
recomputed). Follow-ups and readings are never deleted (the store refuses), so there is no
deletion to follow."""
import sqlite3
from datetime import date

import pytest

from edge.core import devices, management
from edge.core.followup import records
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.core.store import Store
from edge.reports import cached, kpi, source, worklist
from edge.reports.population import month, quarter, year
from test_reports_fast import NOW, TZ, village
from test_reports_summaries import BOX_CLOCK, bp

PERIODS = (month(2026, 3), quarter(2026, 1), month(2026, 1), year(2025))
TODAY = date(2026, 3, 28)


def scratch(store) -> tuple[dict, worklist.Worklist]:
    patients = source.patients(store)
    everything = source.visits(store, date(2000, 1, 1), date(2100, 1, 1))
    return ({p: kpi.compute(patients, everything, p, source.readings_by_source_scan(store, p, TZ))
             for p in PERIODS}, worklist.build(patients, everything, TODAY))


def shown(store) -> tuple[dict, worklist.Worklist]:
    return {p: cached.report(store, p, TZ) for p in PERIODS}, cached.worklist(store, TODAY)


def follow_up(store, rid, day, **extra):
    values = {"visit_date": day, "visit_mode": "1", "sbp": 150, "dbp": 95, "classification": "2",
              "next_step": "1", "next_visit_date": "2026-04-10", **extra}
    return records.save(store, resident_id=rid, form="hypertension", values=values, actor="doc", at=NOW)


@pytest.fixture
def store(tmp_path):
    cached.KEEP, keep = len(PERIODS) + 1, cached.KEEP
    cached.forget()
    s = Store(tmp_path / "edge.db")
    village(s, 4)
    yield s
    s.close()
    cached.KEEP = keep
    cached.forget()


def managed_htn(store) -> str:
    return store.scalar("SELECT c.resident_id FROM chronic_management c JOIN residents r ON r.id = c.resident_id"
                        " WHERE c.disease = 'hypertension' AND c.ended_on IS NULL AND r.voided_at IS NULL"
                        " AND c.since <= '2025-12-01' ORDER BY c.resident_id")


def sql(store, statement: str, params=()) -> None:
    with store.atomic() as conn:
        conn.execute(statement, params)


def last_follow_up(store, rid: str) -> str:
    return store.scalar("SELECT id FROM followups WHERE resident_id = ? AND visit_date = '2026-03-27'", (rid,))


def test_kept_results_follow_every_change(store):
    rid = managed_htn(store)
    sql(store, "UPDATE residents SET birth_date = '1980-01-01' WHERE id = ?", (rid,))
    steps = [
        ("a new follow-up, 145/85 at 46", lambda: follow_up(store, rid, "2026-03-27", sbp=145, dbp=85)),
        ("a corrected birth date: 145/85 at 76 is controlled",
         lambda: sql(store, "UPDATE residents SET birth_date = '1950-01-01' WHERE id = ?", (rid,))),
        ("a correction", lambda: records.save(
            store, resident_id=rid, form="hypertension", actor="doc", at=NOW, reason="录错",
            followup_id=last_follow_up(store, rid),
            values={"visit_date": "2026-03-27", "visit_mode": "3", "sbp": 128, "dbp": 78, "classification": "1",
                    "next_step": "1", "next_visit_date": "2026-06-27"})),
        ("a late follow-up in January", lambda: follow_up(store, rid, "2026-01-20", next_step="4")),
        ("a void", lambda: records.void(store, last_follow_up(store, rid), reason="录错病人", actor="doc", at=NOW)),
        ("an ended management", lambda: management.end(store, resident_id=rid, disease="hypertension",
                                                       on=date(2026, 2, 28), reason="moved", actor="doc", at=NOW)),
        ("a new enrolment", lambda: records.enrol(store, resident_id=rid, disease="diabetes", since=date(2025, 5, 1),
                                                  actor="doc", at=NOW)),
        ("a management start corrected (the table alone)", lambda: sql(
            store, "UPDATE chronic_management SET since = '2026-03-15' WHERE resident_id = ? AND disease = 'diabetes'",
            (rid,))),
        ("a voided resident", lambda: sql(store, "UPDATE residents SET voided_at = '2026-03-01T00:00:00Z'"
                                                 " WHERE id = ?", (rid,))),
        ("new readings", lambda: (devices.add(store, "bp-9", kind="bp", transport="ble", now=NOW),
                                  ingest(store, [bp("bp-9", 130, NOW.replace(day=1), "ble")], clock=BOX_CLOCK))),
    ]
    before = shown(store)
    assert before == scratch(store)
    for name, change in steps:
        kept = cached.counts["kept"]
        assert shown(store) == before, name                       # nothing changed: given again
        assert cached.counts["kept"] == kept + len(PERIODS) + 1, name
        change()
        now = shown(store)
        assert now == scratch(store), name
        assert now != before, name                                # the change is in the next page
        before = now


def test_a_late_follow_up_changes_a_closed_month(store):
    rid = managed_htn(store)
    jan = cached.report(store, month(2026, 1), TZ)
    follow_up(store, rid, "2026-01-20")
    after = cached.report(store, month(2026, 1), TZ)
    assert after.followups["hypertension"]["total"] == jan.followups["hypertension"]["total"] + 1
    assert rid in after["followups_hypertension"].numerator


def test_follow_ups_are_never_deleted(store):
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        with store.atomic() as conn:
            conn.execute("DELETE FROM followups")
