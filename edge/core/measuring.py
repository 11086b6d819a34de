"""Measuring a patient: the "measuring now" session, the readings inbox and voiding readings.

While a session is open, readings from the clinic's own (unbound) devices attach to its resident
(`ingest.resident_for`); a device bound to a resident keeps attaching to that resident. Readings
that arrive with nobody selected wait in the inbox until a doctor assigns or dismisses them.
Nothing is deleted: a reading is voided with a reason, its former status kept.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any, Iterable

from . import audit, outbox
from .errors import NotFound, ValidationError
from .reading import STATUS_VOIDED, utc_iso

DEFAULT_MINUTES = 5


def N_(message: str) -> str:
    return message


def start(store, resident_id: str, *, minutes: int = DEFAULT_MINUTES, now: datetime, actor: str) -> dict:
    """Open a session for the resident (closing any other: the clinic measures one patient at a time)."""
    if not 1 <= int(minutes) <= 120:
        raise ValidationError("a measuring session lasts 1-120 minutes", field="minutes")
    with store.atomic() as conn:
        if not conn.execute("SELECT 1 FROM residents WHERE id = ? AND voided_at IS NULL", (resident_id,)).fetchone():
            raise NotFound(f"resident {resident_id} does not exist")
        _close_open(conn, now)
        expires = utc_iso(now + timedelta(minutes=int(minutes)))
        cur = conn.execute("INSERT INTO measuring_sessions (resident_id, started_by, started_at, expires_at)"
                           " VALUES (?,?,?,?)", (resident_id, actor, utc_iso(now), expires))
        audit.append(conn, actor=actor, action="measuring.start", entity="resident", entity_id=resident_id,
                     at=now, after={"session": cur.lastrowid, "expires_at": expires})
    return current(store, now=now)


def stop(store, *, now: datetime, actor: str) -> None:
    with store.atomic() as conn:
        session = open_session(conn, utc_iso(now))
        if session is None:
            return
        _close_open(conn, now)
        audit.append(conn, actor=actor, action="measuring.stop", entity="resident",
                     entity_id=session["resident_id"], at=now, after={"session": session["id"]})


def _close_open(conn: sqlite3.Connection, now: datetime) -> None:
    conn.execute("UPDATE measuring_sessions SET ended_at = ? WHERE ended_at IS NULL AND expires_at > ?",
                 (utc_iso(now), utc_iso(now)))


OPEN_SESSION = ("SELECT id, resident_id, started_by, started_at, expires_at FROM measuring_sessions"
                " WHERE ended_at IS NULL AND expires_at > ? AND started_at <= ? ORDER BY started_at DESC LIMIT 1")


def open_session(conn: sqlite3.Connection, at: str) -> dict | None:
    """The session open at time `at` (ISO UTC), if any."""
    row = conn.execute(OPEN_SESSION, (at, at)).fetchone()
    return dict(row) if row else None


def current(store, *, now: datetime) -> dict | None:
    """The open session with its resident's name, for the banner on every page."""
    session = store.one(OPEN_SESSION, (utc_iso(now), utc_iso(now)))
    if session:
        session["resident_name"] = store.scalar("SELECT name FROM residents WHERE id = ?", (session["resident_id"],))
    return session


READING_COLUMNS = ("id, device_id, code, value, unit, effective_time, receive_time, status, reason, resident_id,"
                   " assigned_by, assigned_at, dismissed_at, dismiss_reason, voided_at, void_reason")


def inbox(store, *, limit: int = 200) -> list[dict[str, Any]]:
    """Readings nobody has claimed, newest first, grouped by device and time (one BP = SYS+DIA+pulse)."""
    rows = store.query(f"SELECT {READING_COLUMNS} FROM readings WHERE resident_id IS NULL AND dismissed_at IS NULL"
                       " AND status != 'voided' ORDER BY receive_time DESC, id LIMIT ?", (limit,))
    order = {"8480-6": 0, "8462-4": 1, "8867-4": 2}   # systolic, diastolic, pulse, then the rest
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = (r["device_id"], r["effective_time"])
        g = groups.setdefault(key, {"device_id": r["device_id"], "effective_time": r["effective_time"],
                                    "receive_time": r["receive_time"], "readings": []})
        g["readings"].append(r)
    for g in groups.values():
        g["readings"].sort(key=lambda r: (order.get(r["code"], 9), r["code"]))
    return list(groups.values())


def today(store, *, since: datetime, limit: int = 12) -> list[dict[str, Any]]:
    """Residents whose readings were taken since `since` (today's patients), latest first."""
    # readings first (the effective_time index holds only today's rows), then their residents
    return store.query("SELECT r.id, r.name, r.sex, r.birth_date, x.last_time FROM"
                       " (SELECT resident_id, max(effective_time) AS last_time FROM readings"
                       "  INDEXED BY readings_effective WHERE effective_time >= ? AND resident_id IS NOT NULL"
                       "  GROUP BY resident_id) x"
                       " CROSS JOIN residents r ON r.id = x.resident_id WHERE r.voided_at IS NULL"
                       " ORDER BY x.last_time DESC LIMIT ?", (utc_iso(since), limit))


def inbox_count(store) -> int:
    return store.scalar("SELECT count(*) FROM readings WHERE resident_id IS NULL AND dismissed_at IS NULL"
                        " AND status != 'voided'")


def _claimable(conn, reading_ids: Iterable[str]) -> list[dict]:
    ids = list(dict.fromkeys(reading_ids))
    if not ids:
        raise ValidationError(N_("Choose at least one reading."), field="reading_ids")
    rows = []
    for rid in ids:
        row = conn.execute(f"SELECT {READING_COLUMNS} FROM readings WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise NotFound(f"reading {rid} does not exist")
        if row["resident_id"] or row["dismissed_at"] or row["status"] == STATUS_VOIDED:
            raise ValidationError(N_("This reading was already assigned, dismissed or voided; reload the inbox."),
                                  field="reading_ids")
        rows.append(dict(row))
    return rows


def assign(store, reading_ids: Iterable[str], resident_id: str, *, now: datetime, actor: str) -> int:
    with store.atomic() as conn:
        if not conn.execute("SELECT 1 FROM residents WHERE id = ? AND voided_at IS NULL", (resident_id,)).fetchone():
            raise ValidationError(N_("Choose a resident."), field="resident_id")
        rows = _claimable(conn, reading_ids)
        for r in rows:
            conn.execute("UPDATE readings SET resident_id = ?, assigned_by = ?, assigned_at = ? WHERE id = ?",
                         (resident_id, actor, utc_iso(now), r["id"]))
            _changed(conn, r["id"], "reading.assign", now, actor, {"resident_id": None},
                     {"resident_id": resident_id})
    return len(rows)


def dismiss(store, reading_ids: Iterable[str], reason: str, *, now: datetime, actor: str) -> int:
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise ValidationError(N_("Say why these readings are dismissed."), field="reason")
    with store.atomic() as conn:
        rows = _claimable(conn, reading_ids)
        for r in rows:
            conn.execute("UPDATE readings SET dismissed_at = ?, dismiss_reason = ? WHERE id = ?",
                         (utc_iso(now), reason, r["id"]))
            _changed(conn, r["id"], "reading.dismiss", now, actor, {"dismissed_at": None},
                     {"dismissed_at": utc_iso(now), "dismiss_reason": reason})
    return len(rows)


def void_reading(store, reading_id: str, reason: str, *, now: datetime, actor: str) -> None:
    reason = (reason or "").strip()
    if len(reason) < 2:
        raise ValidationError(N_("Say why this reading is voided."), field="reason")
    with store.atomic() as conn:
        row = conn.execute("SELECT status FROM readings WHERE id = ?", (reading_id,)).fetchone()
        if row is None:
            raise NotFound(f"reading {reading_id} does not exist")
        if row[0] == STATUS_VOIDED:
            raise ValidationError(N_("This reading is already voided."), field="reason")
        conn.execute("UPDATE readings SET status = 'voided', status_before_void = status, voided_at = ?,"
                     " void_reason = ? WHERE id = ?", (utc_iso(now), reason, reading_id))
        _changed(conn, reading_id, "reading.void", now, actor, {"status": row[0]},
                 {"status": STATUS_VOIDED, "void_reason": reason})


def _changed(conn, reading_id: str, action: str, now: datetime, actor: str, before: dict, after: dict) -> None:
    row = dict(conn.execute("SELECT id, device_id, code, value, unit, device_time, receive_time, effective_time,"
                            " boot_id, monotonic, clock_status, transport, status, reason, resident_id,"
                            " void_reason, dismiss_reason FROM readings WHERE id = ?", (reading_id,)).fetchone())
    version = 1 + conn.execute("SELECT count(*) FROM audit WHERE entity = 'reading' AND entity_id = ?",
                               (reading_id,)).fetchone()[0]
    outbox.add(conn, kind="reading", record_id=reading_id, payload=row, at=now, version=version)
    audit.append(conn, actor=actor, action=action, entity="reading", entity_id=reading_id, at=now,
                 before=before, after=after)
