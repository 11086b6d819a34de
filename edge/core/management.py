"""Chronic-disease management (纳入管理): the one source of truth for who is managed for
hypertension / type 2 diabetes, since when, and - once it ended - when and why.

`chronic_management` (one row per resident and disease) is the record. The resident record's
`htn` / `t2dm` flags are derived from it: they are written only here, in the same transaction,
and always equal "has an active management row". The diagnosis dates stay on the resident
record (they are the personal record's clinical facts); a new management starts on the diagnosis
date when one is given, else on the day the box was ticked.

Every change = chronic_management row + derived flag + outbox (`chronic_management`, and the
changed `resident` record) + audit, in the caller's transaction.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from . import audit, outbox
from .clock import local_date
from .errors import NotFound, ValidationError
from .reading import utc_iso

HYPERTENSION, DIABETES = "hypertension", "diabetes"
# disease -> (resident flag, resident diagnosis-date column)
RESIDENT_COLUMNS = {HYPERTENSION: ("htn", "htn_diagnosed_on"), DIABETES: ("t2dm", "t2dm_diagnosed_on")}
DISEASES = tuple(RESIDENT_COLUMNS)
# why management ended (管理终止原因): code -> (zh, en)
END_REASONS = {"died": ("死亡", "died"), "moved": ("迁出", "moved away"), "lost": ("失访", "lost to follow-up"),
               "declined": ("拒绝管理", "declined management"), "corrected": ("录入更正", "entered by mistake"),
               "other": ("其他", "other")}


def _row(conn, resident_id: str, disease: str) -> dict[str, Any] | None:
    r = conn.execute("SELECT since, ended_on, end_reason FROM chronic_management WHERE resident_id = ?"
                     " AND disease = ?", (resident_id, disease)).fetchone()
    return {"since": r[0], "ended_on": r[1], "end_reason": r[2]} if r else None


def _check(conn, resident_id: str, disease: str) -> None:
    if disease not in DISEASES:
        raise ValidationError(f"disease must be one of {', '.join(DISEASES)}", "disease")
    r = conn.execute("SELECT voided_at FROM residents WHERE id = ?", (resident_id,)).fetchone()
    if r is None or r[0]:
        raise NotFound(f"resident {resident_id} does not exist or was voided")


def _set_flag(conn, resident_id: str, disease: str, value: int, actor: str, at: datetime) -> None:
    """Bring the derived resident flag in line (a no-op when the resident form already set it)."""
    flag = RESIDENT_COLUMNS[disease][0]
    changed = conn.execute(f"UPDATE residents SET {flag} = ?, version = version + 1, updated_at = ?,"
                           f" updated_by = ? WHERE id = ? AND {flag} != ?",
                           (value, utc_iso(at), actor, resident_id, value)).rowcount
    if changed:
        from .residents import _record
        record = _record(conn, resident_id)
        outbox.add(conn, kind="resident", record_id=resident_id, payload=record, at=at, version=record["version"])


def enrol_in(conn, resident_id: str, disease: str, since: date, *, actor: str, at: datetime) -> None:
    """Start (or restart, or move the start of) management, inside the caller's transaction."""
    _check(conn, resident_id, disease)
    before = _row(conn, resident_id, disease)
    if before and before["since"] == since.isoformat() and not before["ended_on"]:
        return
    ts = utc_iso(at)
    conn.execute("INSERT INTO chronic_management (resident_id, disease, since, created_at, updated_at)"
                 " VALUES (?,?,?,?,?) ON CONFLICT (resident_id, disease) DO UPDATE SET since = excluded.since,"
                 " updated_at = excluded.updated_at, ended_on = NULL, end_reason = NULL",
                 (resident_id, disease, since.isoformat(), ts, ts))
    _set_flag(conn, resident_id, disease, 1, actor, at)
    after = {"resident_id": resident_id, "disease": disease, "since": since.isoformat(), "ended_on": None,
             "end_reason": None}
    outbox.add(conn, kind="chronic_management", record_id=f"{resident_id}:{disease}", payload=after, at=at)
    audit.append(conn, actor=actor, action="management.enrol", entity="chronic_management",
                 entity_id=f"{resident_id}:{disease}", at=at, before=before, after=after)


def end_in(conn, resident_id: str, disease: str, on: date, reason: str, *, actor: str, at: datetime,
           note: str = "", today: date | None = None) -> None:
    """End an active management (死亡/迁出/失访/...) on `on`, inside the caller's transaction.
    `today` is the clinic's date (default: `at` in the default clinic time zone)."""
    _check(conn, resident_id, disease)
    if reason not in END_REASONS:
        raise ValidationError(f"reason must be one of {', '.join(END_REASONS)}", "end_reason")
    before = _row(conn, resident_id, disease)
    if before is None or before["ended_on"]:
        raise ValidationError(f"this resident is not under {disease} management", "disease")
    if on < date.fromisoformat(before["since"]) or on > (today or local_date(at)):
        raise ValidationError("the end date must lie between the start of management and today", "ended_on")
    conn.execute("UPDATE chronic_management SET ended_on = ?, end_reason = ?, updated_at = ?"
                 " WHERE resident_id = ? AND disease = ?", (on.isoformat(), reason, utc_iso(at), resident_id, disease))
    _set_flag(conn, resident_id, disease, 0, actor, at)
    after = {"resident_id": resident_id, "disease": disease, "since": before["since"], "ended_on": on.isoformat(),
             "end_reason": reason, "note": note or None}
    outbox.add(conn, kind="chronic_management", record_id=f"{resident_id}:{disease}", payload=after, at=at)
    audit.append(conn, actor=actor, action="management.end", entity="chronic_management",
                 entity_id=f"{resident_id}:{disease}", at=at, before=before, after=after)


def follow_form(conn, resident_id: str, fields: dict[str, Any], before: dict[str, Any] | None, *,
                actor: str, at: datetime, today: date | None = None) -> None:
    """The resident form's ticks (高血压/糖尿病) applied to management, in the form's transaction:
    ticked -> managed (since the diagnosis date, else today; a restart after an end: today); a
    changed diagnosis date moves the start of an active management; unticked -> management ends today as 录入更正 (use `end` for 死亡/迁出/失访)."""
    today = today or local_date(at)
    for disease, (flag, diagnosed) in RESIDENT_COLUMNS.items():
        row = _row(conn, resident_id, disease)
        active = bool(row and not row["ended_on"])
        when = fields.get(diagnosed)
        if fields.get(flag) and not active:     # a restart after an end begins today
            since = date.fromisoformat(when) if when and not row else today
            enrol_in(conn, resident_id, disease, since, actor=actor, at=at)
        elif fields.get(flag) and when and (before or {}).get(diagnosed) != when:
            enrol_in(conn, resident_id, disease, date.fromisoformat(when), actor=actor, at=at)
        elif not fields.get(flag) and active:
            on = max(today, date.fromisoformat(row["since"]))
            end_in(conn, resident_id, disease, on, "corrected", actor=actor, at=at, note="unticked on the resident form",
                   today=today)


def enrol(store, *, resident_id: str, disease: str, since: date, actor: str, at: datetime) -> None:
    with store.atomic() as conn:
        enrol_in(conn, resident_id, disease, since, actor=actor, at=at)


def end(store, *, resident_id: str, disease: str, on: date, reason: str, actor: str, at: datetime,
        note: str = "", today: date | None = None) -> None:
    with store.atomic() as conn:
        end_in(conn, resident_id, disease, on, reason, actor=actor, at=at, note=note, today=today)


def active(store, resident_id: str) -> dict[str, str]:
    """disease -> since (ISO date) of the resident's active managements."""
    rows = store.query("SELECT disease, since FROM chronic_management WHERE resident_id = ? AND ended_on IS NULL",
                       (resident_id,))
    return {r["disease"]: r["since"] for r in rows}


def history(store, resident_id: str) -> list[dict[str, Any]]:
    """Every management of the resident, active and ended, with the end reason's label."""
    rows = store.query("SELECT disease, since, ended_on, end_reason FROM chronic_management WHERE resident_id = ?"
                       " ORDER BY disease", (resident_id,))
    for r in rows:
        r["end_reason_zh"], r["end_reason_en"] = END_REASONS.get(r["end_reason"] or "", (None, None))
    return rows
