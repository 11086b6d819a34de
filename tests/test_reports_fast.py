"""The fast paths of the report and the worklist (one joined query over the kept summaries,
edge/reports/source.py) give exactly what the straightforward computation gives from every
follow-up on record (kpi.compute, worklist.build), on a seeded random village in a real store:
enrolments begun and ended at random, a voided resident, same-day, phone and voided follow-ups,
corrections, missing BP or glucose."""
import random
from datetime import date, datetime, timezone

import pytest

from edge.core import management
from edge.core.followup import records
from edge.core.store import Store
from edge.reports import kpi, source, worklist
from edge.reports.population import month, quarter, year

NOW = datetime(2026, 3, 28, 2, 0, tzinfo=timezone.utc)
TZ = "Asia/Shanghai"


def village(store, seed: int) -> None:
    rng = random.Random(seed)
    with store.atomic() as conn:
        for i in range(30):
            born = date(1940 + rng.randrange(45), 1 + rng.randrange(12), 1 + rng.randrange(28)).isoformat()
            conn.execute("INSERT INTO residents (id, name, birth_date, created_at, updated_at) VALUES (?,?,?,?,?)",
                         (f"R{i:02d}", f"居民{i}", born if rng.random() < 0.9 else None, "2020-01-01T00:00:00Z",
                          "2020-01-01T00:00:00Z"))
    plan = []
    for i in range(30):
        for disease in ("hypertension", "diabetes"):
            if rng.random() < 0.6:
                since = date.fromordinal(date(2024, 6, 1).toordinal() + rng.randrange(600))
                records.enrol(store, resident_id=f"R{i:02d}", disease=disease, since=since, actor="doc", at=NOW)
                plan.append((f"R{i:02d}", disease, since))
    for rid, disease, since in plan:
        for _ in range(rng.randrange(6)):
            day = date.fromordinal(since.toordinal() + rng.randrange(max(1, (date(2026, 3, 27) - since).days)))
            values = {"visit_date": day.isoformat(), "visit_mode": rng.choice("1123"), "classification": "1",
                      "next_visit_date": date.fromordinal(day.toordinal() + rng.choice((14, 90))).isoformat(),
                      "next_step": rng.choice("1124")}
            if rng.random() < 0.7:
                values.update(sbp=rng.randrange(110, 170), dbp=rng.randrange(60, 100))
            if disease == "diabetes" and rng.random() < 0.7:
                values["fbg"] = round(rng.uniform(4, 12), 1)
            s = records.save(store, resident_id=rid, form=disease, values=values, actor="doc", at=NOW)
            if rng.random() < 0.1:
                records.void(store, s.id, reason="录错", actor="doc", at=NOW)
            elif rng.random() < 0.1:
                records.save(store, resident_id=rid, form=disease, actor="doc", at=NOW, followup_id=s.id,
                             reason="录错", values={**values, "visit_mode": "3", "sbp": 150, "dbp": 95})
        ends = [d for d in (date(2025, 12, 31), date(2026, 2, 28), date(2026, 3, 10)) if d >= since]
        if ends and rng.random() < 0.2:     # some on a period's last day
            management.end(store, resident_id=rid, disease=disease, on=rng.choice(ends), reason="moved",
                           actor="doc", at=NOW)
    with store.atomic() as conn:
        conn.execute("UPDATE residents SET voided_at = '2026-01-05T00:00:00Z' WHERE id = 'R07'")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_report_and_worklist_equal_the_reference(tmp_path, seed):
    store = Store(tmp_path / "edge.db")
    village(store, seed)
    patients = source.patients(store)
    everything = source.visits(store, date(2000, 1, 1), date(2100, 1, 1))
    assert len(everything) > 50
    for period in (month(2026, 3), quarter(2026, 1), year(2026), quarter(2025, 4), month(2026, 2), year(2025)):
        readings = source.readings_by_source(store, period, TZ)
        assert source.report(store, period, TZ) == kpi.compute(patients, everything, period, readings), period
    for today in (date(2026, 3, 28), date(2026, 2, 15), date(2025, 12, 31), date(2026, 12, 31)):
        assert source.build_worklist(store, today) == worklist.build(patients, everything, today), today
    store.close()
