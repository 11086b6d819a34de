"""Loading the report's plain records from the store (read-only SQL; the maths is in kpi/worklist).

Who is under management comes from two places, merged:
- chronic_management (this area's 纳入管理 table, schema_followup), and
- the workbench's enrolment flags on the resident record (residents.htn / residents.t2dm with
  their diagnosis dates), when that schema is present; management then starts at the diagnosis
  date, or at the day the record was made.
"""
from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo
from datetime import datetime, time

from edge.core.reading import utc_iso
from . import kpi, worklist
from .population import DIABETES, HYPERTENSION, Patient, Period, Visit

ENROLMENT_COLUMNS = {HYPERTENSION: ("htn", "htn_diagnosed_on"), DIABETES: ("t2dm", "t2dm_diagnosed_on")}
VISIT_COLUMNS = ("id, resident_id, form, visit_date, visit_mode, sbp, dbp, fbg, classification, next_step,"
                 " next_visit_date, bp_source")


def _columns(store, table: str) -> set[str]:
    return {r["name"] for r in store.query(f"PRAGMA table_info({table})")}


def managed_since(store, resident_id: str | None = None) -> dict[str, dict[str, date]]:
    """resident id -> disease -> the date management began (one resident, or everyone)."""
    one, params = ("", ()) if resident_id is None else (" AND resident_id = ?", (resident_id,))
    managed: dict[str, dict[str, date]] = {}
    for r in store.query("SELECT resident_id, disease, since FROM chronic_management WHERE ended_on IS NULL"
                         + one, params):
        managed.setdefault(r["resident_id"], {})[r["disease"]] = date.fromisoformat(r["since"])
    cols = _columns(store, "residents")
    one = one.replace("resident_id", "id")
    for disease, (flag, diagnosed) in ENROLMENT_COLUMNS.items():
        if flag not in cols:
            continue
        for r in store.query(f"SELECT id, COALESCE({diagnosed}, substr(created_at, 1, 10)) AS since"
                             f" FROM residents WHERE {flag} = 1 AND voided_at IS NULL" + one, params):
            managed.setdefault(r["id"], {}).setdefault(disease, date.fromisoformat(r["since"][:10]))
    return managed


def patients(store) -> list[Patient]:
    managed = managed_since(store)
    rows = store.query("SELECT id, name, birth_date FROM residents WHERE voided_at IS NULL")
    out = []
    for r in rows:
        if r["id"] in managed:
            born = date.fromisoformat(r["birth_date"]) if r["birth_date"] else None
            out.append(Patient(r["id"], r["name"], born, managed[r["id"]]))
    return out


def _visit(r: dict) -> Visit:
    return Visit(r["resident_id"], r["form"], date.fromisoformat(r["visit_date"]), r["visit_mode"],
                 r["sbp"], r["dbp"], r["fbg"], r["classification"], r["next_step"],
                 date.fromisoformat(r["next_visit_date"]) if r["next_visit_date"] else None,
                 r["bp_source"], r["id"])


def visits(store, since: date, until: date) -> list[Visit]:
    rows = store.query(f"SELECT {VISIT_COLUMNS} FROM followups WHERE voided_at IS NULL"
                       " AND visit_date BETWEEN ? AND ?", (since.isoformat(), until.isoformat()))
    return [_visit(r) for r in rows]


def last_visits(store, before: date) -> list[Visit]:
    """Each resident's last follow-up per form before `before` (for those not seen since)."""
    rows = store.query(f"SELECT {VISIT_COLUMNS}, max(visit_date) FROM followups WHERE voided_at IS NULL"
                       " AND visit_date < ? GROUP BY resident_id, form", (before.isoformat(),))
    return [_visit(r) for r in rows]


def readings_by_source(store, period: Period, tz: str) -> list[dict]:
    zone = ZoneInfo(tz)
    lo = utc_iso(datetime.combine(period.start, time.min, zone))
    hi = utc_iso(datetime.combine(period.end + timedelta(days=1), time.min, zone))
    rows = store.query("SELECT transport AS source, code, count(*) AS count FROM readings"
                       " WHERE status = 'valid' AND effective_time >= ? AND effective_time < ?"
                       " GROUP BY transport, code ORDER BY transport, code", (lo, hi))
    return rows


def report(store, period: Period, tz: str) -> kpi.Report:
    return kpi.compute(patients(store), visits(store, period.year_start, period.end), period,
                       readings_by_source(store, period, tz))


def build_worklist(store, today: date) -> worklist.Worklist:
    since = date(today.year - 1, 1, 1)
    recent = visits(store, since, today)
    return worklist.build(patients(store), last_visits(store, since) + recent, today)
