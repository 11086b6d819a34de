"""Reports computed from a real store: follow-ups saved through records.save, management from
chronic_management (the record; resident flags are derived, migration 510 carried old ones over); a written report goes to the
outbox in the same transaction."""
import json
from datetime import date, datetime, timezone

import pytest

from edge.core import audit
from edge.core.followup import records
from edge.core.store import Store
from edge.reports import archive, source
from edge.reports.population import month, quarter, year

NOW = datetime(2026, 3, 28, 2, 0, tzinfo=timezone.utc)


def add_resident(store, rid, birth, created="2020-01-01T00:00:00Z"):
    with store.atomic() as conn:
        conn.execute("INSERT INTO residents (id, name, birth_date, created_at, updated_at) VALUES (?,?,?,?,?)",
                     (rid, "居民" + rid, birth, created, created))


def visit(store, rid, day, sbp, dbp, mode="1", form="hypertension", **extra):
    values = {"visit_date": day, "visit_mode": mode, "sbp": sbp, "dbp": dbp, "classification": "1",
              "next_visit_date": "2026-07-01", **extra}
    return records.save(store, resident_id=rid, form=form, values=values, actor="doc", at=NOW)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "edge.db")
    yield s
    s.close()


def test_report_from_the_store(store):
    # A 70 y: 145/85 -> controlled at 65+;  B 50 y: 145/85 -> not;  C never seen -> lost
    for rid, born in (("A", "1956-01-01"), ("B", "1976-01-01"), ("C", "1960-01-01"), ("X", "1990-01-01")):
        add_resident(store, rid, born)
    for rid in "ABC":
        records.enrol(store, resident_id=rid, disease="hypertension", since=date(2025, 1, 1), actor="doc", at=NOW)
    visit(store, "A", "2026-03-02", 145, 85)
    v = visit(store, "B", "2026-02-10", 120, 80)
    records.save(store, resident_id="B", form="hypertension", actor="doc", at=NOW, followup_id=v.id,
                 reason="录错", values={"visit_date": "2026-02-10", "visit_mode": "1", "sbp": 145, "dbp": 85,
                                       "classification": "2", "next_visit_date": "2026-02-24"})
    bad = visit(store, "C", "2026-03-01", 120, 80)
    records.void(store, bad.id, reason="录错病人", actor="doc", at=NOW)     # voided: C is still lost
    r = source.report(store, quarter(2026, 1), "Asia/Shanghai")
    assert r["managed_hypertension"].numerator == ("A", "B", "C")
    assert r["control_hypertension"].numerator == ("A",)                  # B judged on its corrected version
    assert r["standard_hypertension"].numerator == ("A", "B")
    assert r.followups["hypertension"]["total"] == 2
    assert source.report(store, month(2026, 2), "Asia/Shanghai").followups["hypertension"]["total"] == 1

    rid = archive.write(store, r, actor="doc", at=NOW)
    out = store.one("SELECT kind, payload FROM outbox WHERE record_id = ?", (rid,))
    payload = json.loads(out["payload"])
    assert out["kind"] == "report" and payload["period"] == "2026-Q1"
    assert payload["indicators"]["control_hypertension"] == {"numerator": 1, "denominator": 3, "rate": 0.3333}
    kept = json.loads(store.scalar("SELECT data FROM reports WHERE id = ?", (rid,)))
    assert kept["indicators"]["control_hypertension"]["numerator_ids"] == ["A"]   # the lists stay on the node
    assert [h["action"] for h in audit.history(store.conn, "report", rid)] == ["report.write"]


def test_migration_510_carries_resident_flags_into_management(store):
    """Rows flagged on the resident record before 510 (no management row) are carried over with
    the start the reports used to merge (diagnosis date, else the record's creation day), through
    the outbox and the audit; the flags of managed-only residents are set."""
    from edge.core import schema_management
    add_resident(store, "D", "1970-01-01", created="2025-05-05T03:00:00Z")
    add_resident(store, "E", "1970-01-01")
    add_resident(store, "F", "1970-01-01")
    with store.atomic() as conn:     # the state a pre-510 node could be in
        conn.execute("UPDATE residents SET htn = 1, t2dm = 1, t2dm_diagnosed_on = '2026-03-15' WHERE id = 'D'")
        conn.execute("INSERT INTO chronic_management (resident_id, disease, since, created_at, updated_at)"
                     " VALUES ('F', 'diabetes', '2024-02-02', 'x', 'x')")
    with store.atomic():
        schema_management.single_enrolment(store.db)
    pats = {p.resident_id: p for p in source.patients(store)}
    assert set(pats) == {"D", "F"}
    assert pats["D"].managed == {"hypertension": date(2025, 5, 5), "diabetes": date(2026, 3, 15)}
    assert store.scalar("SELECT t2dm FROM residents WHERE id = 'F'") == 1
    assert store.scalar("SELECT count(*) FROM outbox WHERE kind = 'chronic_management'") == 2
    assert [h["actor"] for h in audit.history(store.conn, "chronic_management", "D:diabetes")] == ["migration-510"]
    assert audit.verify(store.conn).ok
    r = source.report(store, month(2026, 2), "Asia/Shanghai")
    assert r["managed_diabetes"].numerator == ("F",) and r["managed_hypertension"].numerator == ("D",)


def test_worklist_from_the_store(store):
    add_resident(store, "A", "1956-01-01")
    records.enrol(store, resident_id="A", disease="hypertension", since=date(2024, 1, 1), actor="doc", at=NOW)
    visit(store, "A", "2024-06-01", 130, 80, next_visit_date="2024-09-01")
    wl = source.build_worklist(store, date(2026, 3, 28))
    assert [(i.resident_id, i.last_visit, i.due) for i in wl.overdue] == [("A", date(2024, 6, 1), date(2024, 9, 1))]
    assert [i.resident_id for i in wl.not_seen] == ["A"]


def test_sql_summaries_agree_with_the_pure_ones(store):
    """The store-side summaries (GROUP BY in SQLite) give exactly what kpi/worklist compute from
    the visits themselves, on a random mix: same-day visits, phone visits, missing BP, voided."""
    import random
    from edge.reports import kpi, worklist
    rng = random.Random(7)
    for i in range(12):
        add_resident(store, f"P{i}", "1958-06-01")
    for n in range(150):
        rid, form = f"P{rng.randrange(12)}", rng.choice(["hypertension", "diabetes"])
        day = date(2025, 1, 1).toordinal() + rng.randrange(450)
        values = {"visit_date": date.fromordinal(day).isoformat(), "visit_mode": rng.choice("1123"),
                  "classification": "1", "next_visit_date": date.fromordinal(day + 90).isoformat(),
                  "next_step": rng.choice("1124")}
        if rng.random() < 0.7:
            values.update(sbp=rng.randrange(110, 170), dbp=rng.randrange(60, 100))
        if form == "diabetes" and rng.random() < 0.7:
            values["fbg"] = round(rng.uniform(4, 12), 1)
        s = records.save(store, resident_id=rid, form=form, values=values, actor="doc", at=NOW)
        if rng.random() < 0.1:
            records.void(store, s.id, reason="录错", actor="doc", at=NOW)
    everything = source.visits(store, date(2000, 1, 1), date(2100, 1, 1))
    for period in (quarter(2026, 1), month(2025, 7), quarter(2025, 4), year(2026)):
        assert source.year_to_date(store, period) == kpi.summarise(everything, period)
        assert source.year_to_date_scan(store, period) == kpi.summarise(everything, period)
    def shape(standings):       # what the worklist reads of each standing
        return {k: (s.last.id, s.last.visit_date, s.last.visit_mode, s.last.next_step, s.last.next_visit_date,
                    s.seen_quarter, s.seen_year) for k, s in standings.items()}
    for today in (date(2025, 6, 30), date(2026, 3, 28), date(2026, 12, 31)):
        assert shape(source.standings(store, today)) == shape(worklist.summarise(everything, today))
        assert shape(source.standings_scan(store, today)) == shape(worklist.summarise(everything, today))
    # the kept summaries are what a fresh rebuild gives
    before = store.query("SELECT * FROM followup_year ORDER BY year, resident_id, form")
    with store.atomic() as conn:
        from edge.core.followup import standing
        standing.rebuild(conn)
    assert store.query("SELECT * FROM followup_year ORDER BY year, resident_id, form") == before


def test_report_sent_upstream_stays_small_with_5000_patients(store):
    from edge.reports import kpi
    from edge.reports.population import Patient, Visit
    pats = [Patient(f"r-{i:032x}", "", date(1960, 1, 1), {"hypertension": date(2020, 1, 1)}) for i in range(5000)]
    visits = [Visit(p.resident_id, "hypertension", date(2026, 3, 1), "1", 120, 80, id=f"f{i}")
              for i, p in enumerate(pats)]
    rid = archive.write(store, kpi.compute(pats, visits, quarter(2026, 1)), actor="doc", at=NOW)
    size = len(store.scalar("SELECT payload FROM outbox WHERE record_id = ?", (rid,)).encode())
    assert size < 64 * 1024, size          # sync/hub/service.py MAX_RECORD_BYTES
