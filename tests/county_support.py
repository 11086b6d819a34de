"""Records as the nodes send them, written into a real hub database (for the county view tests):
reports made by the node's own code (edge/reports/archive.py), residents and follow-ups in the
shape edge/core sends them."""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone

from edge.reports import archive
from edge.reports.kpi import Indicator, Report
from edge.reports.population import Period

T0 = datetime(2026, 10, 5, 8, 0, tzinfo=timezone.utc)


def ids(n: int, tag: str) -> tuple[str, ...]:
    return tuple(f"{tag}{i}" for i in range(n))


def report_payload(period: Period, rid: str, htn: tuple[int, int, int], dm: tuple[int, int, int]) -> dict:
    """A report as the node sends it; htn/dm = (managed, standard, controlled)."""
    ind = {}
    for disease, (managed, std, ctl) in (("hypertension", htn), ("diabetes", dm)):
        everyone = ids(managed, disease[0])
        ind[f"managed_{disease}"] = Indicator(f"managed_{disease}", everyone, None)
        ind[f"standard_{disease}"] = Indicator(f"standard_{disease}", everyone[:std], everyone)
        ind[f"control_{disease}"] = Indicator(f"control_{disease}", everyone[:ctl], everyone)
    return archive.upstream(rid, archive.snapshot(Report(period, ind)))


def put(store, node: str, kind: str, record_id: str, payload: dict, *, version: int = 1,
        at: datetime = T0) -> None:
    text = json.dumps(payload, ensure_ascii=False)
    received = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with store.begin() as c:
        store.insert_records(c, [{"node": node, "kind": kind, "record_id": record_id, "version": version,
                                  "payload": text, "digest": hashlib.sha256(text.encode()).hexdigest(),
                                  "batch_id": "b-" + record_id, "day": received[:10], "received_at": received}])


def add_nodes(store, *names: str) -> None:
    for n in names:
        store.add_node(n, f"code-{n}", now=T0, ttl=__import__("datetime").timedelta(hours=1))


def resident(rid: str, *, name: str, id_number: str, sex: str, birth: date, phone: str, address: str,
             record_no: str) -> dict:
    return {"id": rid, "name": name, "id_number": id_number, "sex": sex, "birth_date": birth.isoformat(),
            "phone": phone, "address": address, "health_record_no": record_no, "htn": 1,
            "htn_diagnosed_on": "2020-01-01", "t2dm": 0, "t2dm_diagnosed_on": None, "contract_signed": 1,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "created_by": "doctor-wang", "updated_by": "doctor-wang", "version": 1, "voided_at": None,
            "void_reason": None}


def followup(fid: str, resident_id: str, visit: date, sbp: int, dbp: int) -> dict:
    return {"id": fid, "version": 1, "resident_id": resident_id, "form": "hypertension",
            "values": {"visit_date": visit.isoformat(), "visit_mode": "1", "sbp": sbp, "dbp": dbp,
                       "heart_rate": 72, "symptoms_other": "住在村东头王家", "classification": "1"},
            "sources": {}, "alerts": [], "author": "doctor-wang", "saved_at": "2026-09-01T00:00:00Z",
            "reason": None}
