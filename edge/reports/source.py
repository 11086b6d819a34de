"""Loading the report's plain records from the store (read-only SQL; the maths is in kpi/worklist).

Who is under management comes from one place: chronic_management (edge/core/management.py), the
record the resident form's 高血压/糖尿病 ticks write. Ended managements are loaded too (with their
end date), so a report for a past period still counts a patient who later died or moved away.
"""
from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Sequence
from zoneinfo import ZoneInfo
from datetime import datetime, time, timezone

from edge.core.reading import utc_iso
from . import kpi, worklist
from .population import DIABETES, HYPERTENSION, Patient, Period, Visit, quarter_of

VISIT_COLUMNS = ("id, resident_id, form, visit_date, visit_mode, sbp, dbp, fbg, classification, next_step,"
                 " next_visit_date, bp_source")
# only columns held by the covering indexes of schema_followup 501, so no table row is read
PERIOD_COLUMNS = "id, resident_id, form, visit_date, visit_mode, sbp, dbp, fbg, bp_source"


def managed_since(store, resident_id: str | None = None) -> dict[str, dict[str, date]]:
    """resident id -> disease -> the date the active management began (one resident, or everyone)."""
    one, params = ("", ()) if resident_id is None else (" AND resident_id = ?", (resident_id,))
    managed: dict[str, dict[str, date]] = {}
    for r in store.query("SELECT resident_id, disease, since FROM chronic_management WHERE ended_on IS NULL"
                         + one, params):
        managed.setdefault(r["resident_id"], {})[r["disease"]] = date.fromisoformat(r["since"])
    return managed


def patients(store) -> list[Patient]:
    """Every live resident ever under management, with when each management began and ended."""
    by_id: dict[str, tuple] = {}
    for rid, name, born, disease, since, ended in store.conn.execute(
            "SELECT r.id, r.name, r.birth_date, c.disease, c.since, c.ended_on FROM chronic_management c"
            " JOIN residents r ON r.id = c.resident_id WHERE r.voided_at IS NULL ORDER BY r.id"):
        entry = by_id.setdefault(rid, (name, born, {}, {}))
        entry[2][disease] = day(since[:10])
        if ended:
            entry[3][disease] = day(ended[:10])
    return [Patient(rid, name, day(born) if born else None, managed, ended or None)
            for rid, (name, born, managed, ended) in by_id.items()]


day = lru_cache(maxsize=8192)(date.fromisoformat)     # the same few hundred dates, parsed once


def _visit(r: dict) -> Visit:
    nxt = r.get("next_visit_date")
    return Visit(r["resident_id"], r["form"], day(r["visit_date"]), r["visit_mode"],
                 r.get("sbp"), r.get("dbp"), r.get("fbg"), r.get("classification"), r.get("next_step"),
                 day(nxt) if nxt else None, r.get("bp_source"), r["id"])


def visits(store, since: date, until: date, columns: str = VISIT_COLUMNS) -> list[Visit]:
    rows = store.query(f"SELECT {columns} FROM followups WHERE voided_at IS NULL"
                       " AND visit_date BETWEEN ? AND ?", (since.isoformat(), until.isoformat()))
    return [_visit(r) for r in rows]


def readings_by_source(store, period: Period, tz: str) -> list[dict]:
    """Valid readings per source and code whose effective time falls in the period (in the clinic's
    zone): whole UTC hours from the counts the triggers keep (reading_hours, schema_followup 530),
    the part of an hour at either end, if the zone's midnight is not on the hour, from the readings."""
    zone = ZoneInfo(tz)
    start = datetime.combine(period.start, time.min, zone).astimezone(timezone.utc)
    end = datetime.combine(period.end + timedelta(days=1), time.min, zone).astimezone(timezone.utc)
    first = start if start == _hour(start) else _hour(start) + timedelta(hours=1)     # first whole hour
    last = _hour(end)                                                                  # end of the whole hours
    counts: dict[tuple[str, str], int] = {}
    for source_, code, n in store.conn.execute(
            "SELECT transport, code, sum(n) FROM reading_hours WHERE hour >= ? AND hour < ? GROUP BY 1, 2",
            (utc_iso(first)[:13], utc_iso(last)[:13])):
        counts[(source_, code)] = n
    for lo, hi in ((start, min(first, end)), (max(last, first), end)):
        if lo < hi:
            for source_, code, n in store.conn.execute(
                    "SELECT transport, code, count(*) FROM readings WHERE status = 'valid'"
                    " AND effective_time >= ? AND effective_time < ? GROUP BY 1, 2", (utc_iso(lo), utc_iso(hi))):
                counts[(source_, code)] = counts.get((source_, code), 0) + n
    return [{"source": s, "code": c, "count": n} for (s, c), n in sorted(counts.items()) if n > 0]


def readings_by_source_scan(store, period: Period, tz: str) -> list[dict]:
    """The same counts by reading every valid reading of the period (readings_period_source)."""
    zone = ZoneInfo(tz)
    lo = utc_iso(datetime.combine(period.start, time.min, zone))
    hi = utc_iso(datetime.combine(period.end + timedelta(days=1), time.min, zone))
    return store.query("SELECT transport AS source, code, count(*) AS count FROM readings"
                       " WHERE status = 'valid' AND effective_time >= ? AND effective_time < ?"
                       " GROUP BY transport, code ORDER BY transport, code", (lo, hi))


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


LIVE = "voided_at IS NULL"


def year_to_date(store, period: Period) -> dict[tuple[str, str], kpi.YearToDate]:
    """Each patient's year to date: from the kept summaries (followup_year) when nothing in that
    year lies after the period's end (the current period), else by scanning the follow-ups."""
    later = store.scalar(f"SELECT 1 FROM followups WHERE {LIVE} AND visit_date > ? AND visit_date <= ? LIMIT 1",
                         (period.end.isoformat(), f"{period.end.year}-12-31"))
    if later:
        return year_to_date_scan(store, period)
    out = {}
    for rid, form, f2f, bp, fbg in store.conn.execute(
            "SELECT resident_id, form, face_to_face, last_bp, last_fbg FROM followup_year WHERE year = ?",
            (period.end.year,)):
        out[(rid, form)] = kpi.YearToDate(f2f, _last_bp(bp), _last_fbg(fbg))
    return out


def _last_bp(text: str | None):
    if not text:
        return None
    d, i, sbp, dbp = text.split("|")
    return (day(d), i, _num(sbp), _num(dbp))


def _last_fbg(text: str | None):
    if not text:
        return None
    d, i, g = text.split("|")
    return (day(d), i, float(g))


def year_to_date_scan(store, period: Period) -> dict[tuple[str, str], kpi.YearToDate]:
    """kpi.summarise done by SQLite in one pass (same answers; tested against each other): the last
    measurement is the max of 'date|id|value' strings (ISO dates sort as text)."""
    out = {}
    for rid, form, f2f, bp, fbg in store.conn.execute(
            "SELECT resident_id, form, sum(visit_mode IN ('1','2')),"
            " max(CASE WHEN sbp IS NOT NULL AND dbp IS NOT NULL THEN visit_date || '|' || id || '|' || sbp"
            "     || '|' || dbp END),"
            " max(CASE WHEN fbg IS NOT NULL THEN visit_date || '|' || id || '|' || fbg END)"
            f" FROM followups WHERE {LIVE} AND visit_date BETWEEN ? AND ? GROUP BY resident_id, form",
            (period.year_start.isoformat(), period.end.isoformat())):
        out[(rid, form)] = kpi.YearToDate(f2f, _last_bp(bp), _last_fbg(fbg))
    return out


@lru_cache(maxsize=4096)      # the same few hundred BP values
def _num(text: str) -> float:
    if text.isdigit():
        return int(text)
    v = float(text)
    return int(v) if v.is_integer() else v


def standings(store, today: date) -> dict[tuple[str, str], worklist.Standing]:
    """Each patient's standing from the kept summary (followup_standing); by scanning the
    follow-ups instead if any is dated after `today`."""
    if store.scalar(f"SELECT 1 FROM followups WHERE {LIVE} AND visit_date > ? LIMIT 1", (today.isoformat(),)):
        return standings_scan(store, today)
    q_start, y_start = quarter_of(today).start.isoformat(), date(today.year, 1, 1).isoformat()
    out = {}
    for rid, form, i, d, mode, step, nxt, f2f in store.conn.execute(
            "SELECT resident_id, form, last_id, last_date, last_mode, next_step, next_visit_date, last_f2f_date"
            " FROM followup_standing"):
        visit = Visit(rid, form, day(d), mode, next_step=step or None,
                      next_visit_date=day(nxt) if nxt else None, id=i)
        out[(rid, form)] = worklist.Standing(visit, bool(f2f and f2f >= q_start), d >= y_start)
    return out


def standings_scan(store, today: date) -> dict[tuple[str, str], worklist.Standing]:
    """worklist.summarise done by SQLite in one pass over the covering index followups_standing."""
    q_start, y_start = quarter_of(today).start.isoformat(), date(today.year, 1, 1).isoformat()
    out = {}
    for rid, form, last, seen_q, seen_y in store.conn.execute(
            "SELECT resident_id, form, max(visit_date || '|' || id || '|' || visit_mode || '|'"
            "   || coalesce(next_step, '') || '|' || coalesce(next_visit_date, '')),"
            " max(visit_mode IN ('1','2') AND visit_date >= ?), max(visit_date >= ?)"
            f" FROM followups WHERE {LIVE} AND visit_date <= ? GROUP BY resident_id, form",
            (q_start, y_start, today.isoformat())):
        d, i, mode, step, nxt = last.split("|")
        visit = Visit(rid, form, day(d), mode, next_step=step or None,
                      next_visit_date=day(nxt) if nxt else None, id=i)
        out[(rid, form)] = worklist.Standing(visit, bool(seen_q), bool(seen_y))
    return out


def report(store, period: Period, tz: str) -> kpi.Report:
    """The period's report: its follow-up figures (followup_report) and its readings by source."""
    r = followup_report(store, period)
    r.readings_by_source = readings_by_source(store, period, tz)
    return r


def followup_report(store, period: Period) -> kpi.Report:
    """The period's report without its readings. The current period (nothing in its year after its
    end) reads the kept summaries in one joined query and the period's follow-ups as plain tuples;
    a past period groups the follow-ups (year_to_date_scan). Both give what kpi.compute gives from
    every follow-up."""
    if _later_in_year(store, period):
        return kpi.from_summaries(patients(store), year_to_date_scan(store, period),
                                  visits(store, period.start, period.end, PERIOD_COLUMNS), period)
    return kpi.from_managed(managed_year_to_date(store, period), done_in(store, period), period)


def _later_in_year(store, period: Period) -> bool:
    return bool(store.scalar(f"SELECT 1 FROM followups WHERE {LIVE} AND visit_date > ? AND visit_date <= ? LIMIT 1",
                             (period.end.isoformat(), f"{period.end.year}-12-31")))


def among(column: str, residents: Sequence[str] | None) -> tuple[str, tuple]:
    """The SQL condition (and its parameters) keeping only `residents`; everyone if None."""
    if residents is None:
        return "", ()
    return f" AND {column} IN ({','.join('?' * len(residents))})", tuple(residents)


def managed_year_to_date(store, period: Period, residents: Sequence[str] | None = None
                         ) -> dict[str, list[kpi.Managed]]:
    """disease -> the live residents under management at the period's end (Patient.managed_on),
    each with its year to date from followup_year: one query, no per-patient objects but the tuple.
    Only `residents`, if given (edge/reports/cached.py, after a save)."""
    end = period.end.isoformat()
    only, some = among("c.resident_id", residents)
    out: dict[str, list[kpi.Managed]] = {d: [] for d in (HYPERTENSION, DIABETES)}
    empty = kpi.YearToDate()
    for rid, disease, since, born, f2f, bp, fbg in store.conn.execute(
            "SELECT c.resident_id, c.disease, substr(c.since, 1, 10), r.birth_date, y.face_to_face, y.last_bp,"
            " y.last_fbg FROM chronic_management c JOIN residents r ON r.id = c.resident_id"
            " LEFT JOIN followup_year y ON y.year = ? AND y.resident_id = c.resident_id AND y.form = c.disease"
            " WHERE r.voided_at IS NULL AND substr(c.since, 1, 10) <= ?"
            " AND (c.ended_on IS NULL OR c.ended_on = '' OR substr(c.ended_on, 1, 10) > ?)" + only,
            (period.end.year, end, end, *some)):
        # only the measurement the disease's control is judged on (kpi._controlled) is parsed
        y = empty if f2f is None else kpi.YearToDate(f2f, _last_bp(bp) if disease == HYPERTENSION else None,
                                                     _last_fbg(fbg) if disease == DIABETES else None)
        out.setdefault(disease, []).append((rid, day(since), day(born) if born else None, y))
    return out


def done_in(store, period: Period, residents: Sequence[str] | None = None) -> list[kpi.Done]:
    """The live follow-ups dated inside the period, as kpi.Done tuples (covering index followups_period)."""
    only, some = among("resident_id", residents)
    return store.conn.execute(
        "SELECT resident_id, form, visit_mode IN ('1','2'), sbp IS NOT NULL, coalesce(bp_source = 'device', 0), id"
        f" FROM followups WHERE {LIVE} AND visit_date BETWEEN ? AND ?" + only,
        (period.start.isoformat(), period.end.isoformat(), *some)).fetchall()


def build_worklist(store, today: date) -> worklist.Worklist:
    """The worklist from one joined query over followup_standing; by scanning the follow-ups
    (standings_scan) if any is dated after `today`. Both give what worklist.build gives."""
    if store.scalar(f"SELECT 1 FROM followups WHERE {LIVE} AND visit_date > ? LIMIT 1", (today.isoformat(),)):
        return worklist.from_standings(patients(store), standings_scan(store, today), today)
    return worklist.from_managed(managed_standings(store, today), today)


def managed_standings(store, today: date, residents: Sequence[str] | None = None) -> list[worklist.Managed]:
    """The live residents under management today (Patient.managed_on) with each form's standing
    from followup_standing, in resident id order (all follow-ups on record are on or before today).
    Only `residents`, if given."""
    only, some = among("c.resident_id", residents)
    q_start, y_start, iso = quarter_of(today).start.isoformat(), date(today.year, 1, 1).isoformat(), today.isoformat()
    rows: list[worklist.Managed] = []
    for rid, name, disease, since, d, step, nxt, f2f, latest in store.conn.execute(
            "SELECT c.resident_id, r.name, c.disease, substr(c.since, 1, 10), s.last_date, s.next_step,"
            " s.next_visit_date, s.last_f2f_date,"
            " (SELECT max(a.last_date) FROM followup_standing a WHERE a.resident_id = c.resident_id)"
            " FROM chronic_management c JOIN residents r ON r.id = c.resident_id"
            " LEFT JOIN followup_standing s ON s.resident_id = c.resident_id AND s.form = c.disease"
            " WHERE r.voided_at IS NULL AND substr(c.since, 1, 10) <= ?"
            " AND (c.ended_on IS NULL OR c.ended_on = '' OR substr(c.ended_on, 1, 10) > ?)" + only +
            " ORDER BY c.resident_id", (iso, iso, *some)):
        last = None if d is None else worklist.Last(day(d), step or None, day(nxt) if nxt else None)
        form = (disease, day(since), last, bool(f2f and f2f >= q_start))
        if rows and rows[-1][0] == rid:
            forms = rows[-1][2]
            forms.insert(0, form) if disease == HYPERTENSION else forms.append(form)
        else:
            rows.append((rid, name, [form], bool(latest and latest >= y_start)))
    return rows
