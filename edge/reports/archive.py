"""Writing a finished report: a snapshot row, its outbox entry (kind 'report') and its audit
entry in one transaction, so the sync carries it to the county with no extra step."""
from __future__ import annotations

import json
import uuid
from datetime import datetime

from edge.core import audit, outbox
from edge.core.reading import utc_iso
from .kpi import Report


def snapshot(report: Report) -> dict:
    p = report.period
    return {
        "period": p.label, "kind": p.kind, "start": p.start.isoformat(), "end": p.end.isoformat(),
        "indicators": {k: {"numerator": len(i.numerator), "denominator": None if i.denominator is None
                           else len(i.denominator), "rate": None if i.rate is None else round(i.rate, 4),
                           "numerator_ids": list(i.numerator)}
                       for k, i in report.indicators.items()},
        "followups": report.followups,
        "readings_by_source": report.readings_by_source,
    }


def upstream(rid: str, data: dict) -> dict:
    """What the county receives: the numbers, not the resident lists (the hub takes records up to
    64 KB, sync/hub/service.py; the county has every follow-up record to rebuild the lists)."""
    indicators = {k: {f: v for f, v in i.items() if f != "numerator_ids"} for k, i in data["indicators"].items()}
    return {"id": rid, **data, "indicators": indicators}


def write(store, report: Report, *, actor: str, at: datetime) -> str:
    data = snapshot(report)
    rid = "rep-" + uuid.uuid4().hex
    with store.atomic() as conn:
        conn.execute("INSERT INTO reports (id, kind, period, period_start, period_end, data, author, created_at)"
                     " VALUES (?,?,?,?,?,?,?,?)",
                     (rid, data["kind"], data["period"], data["start"], data["end"],
                      json.dumps(data, ensure_ascii=False), actor, utc_iso(at)))
        outbox.add(conn, kind="report", record_id=rid, payload=upstream(rid, data), at=at)
        audit.append(conn, actor=actor, action="report.write", entity="report", entity_id=rid, at=at,
                     after={k: data[k] for k in ("period", "kind", "start", "end")})
    return rid


def written(store, period_label: str) -> list[dict]:
    return store.query("SELECT id, author, created_at FROM reports WHERE period = ? ORDER BY created_at DESC",
                       (period_label,))
