"""A resident's medication history for the tests of the proposed 主要用药情况 rows
(edge/core/healthcheck/carry.py): last year's check and this autumn's hypertension follow-up."""
from __future__ import annotations

from datetime import datetime, timezone

from edge.core.followup import records as followups
from edge.core.healthcheck import records

AT = datetime(2026, 10, 12, 2, 0, tzinfo=timezone.utc)


def follow_up(store, rid: str, *, adherence: str | None = "1") -> None:
    """The 2026-10-12 hypertension follow-up: amlodipine and metoprolol, taken as prescribed."""
    values = {"visit_date": "2026-10-12", "visit_mode": "1",
              "medications": [{"name": "氨氯地平片", "times_per_day": 1, "dose_mg": 5.0},
                              {"name": "酒石酸美托洛尔片", "times_per_day": 2, "dose_mg": 25.0}]}
    if adherence:
        values["med_adherence"] = adherence
    followups.save(store, resident_id=rid, form="hypertension", actor="doc", at=AT, values=values)


def history(store, rid: str = "R1") -> None:
    """Last year's check (amlodipine at another dose, atorvastatin, a stay, a vaccine) and this
    autumn's hypertension follow-up (amlodipine and metoprolol, taken as prescribed)."""
    records.save(store, resident_id=rid, actor="doc", at=AT.replace(year=2025, month=11, day=20), values={
        "check_date": "2025-11-20",
        "medications": [{"name": "氨氯地平片 ", "usage": "口服", "dose": "每日1次 每次2.5mg", "duration": "2年",
                         "compliance": "2"},
                        {"name": "阿托伐他汀钙片", "usage": "口服", "dose": "每晚1次 每次20mg", "duration": "1年",
                         "compliance": "1"}],
        "hospital_stays": [{"start_date": "2025-03-02", "end_date": "2025-03-09", "reason": "肺炎"}],
        "vaccinations": [{"name": "23价肺炎球菌多糖疫苗", "start_date": "2025-10-01"}]})
    follow_up(store, rid)
