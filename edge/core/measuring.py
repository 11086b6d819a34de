"""Measuring a patient: the "measuring now" session, the readings inbox and voiding readings.

A session belongs to one visit of one resident. While it is open, readings from the clinic's own
(unbound) devices attach to its resident and to it (`ingest.attach`); a device bound to a resident
keeps attaching to that resident. It ends when the visit's form is saved, when the doctor confirms
measuring someone else, by 结束测量, or at its timeout; the clinic's devices measure one resident at
a time. Readings that arrive with no session open wait in the inbox until a doctor assigns or
dismisses them; the visit's form is filled only from its session's readings (followup.prefill).
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
END_SAVED, END_SWITCHED, END_STOPPED = "saved", "switched", "stopped"   # (timed out: no end_reason)
BP_CODES = ("8480-6", "8462-4", "8867-4")                                # systolic, diastolic, pulse
ARMS = (None, "left", "right")                                           # None: not said


def N_(message: str) -> str:
    return message


class SessionBusy(ValidationError):
    """Another resident is being measured: starting now would take the clinic's devices from them."""

    def __init__(self, session: dict):
        super().__init__(N_("Another resident is being measured."), field="resident_id")
        self.session = session


def start(store, resident_id: str, *, minutes: int = DEFAULT_MINUTES, now: datetime, actor: str,
          switch: bool = False, arm: str | None = None) -> dict:
    """Open a measuring session for the resident. The clinic's devices measure one resident at a
    time: if another resident's session is open this raises SessionBusy, unless `switch` (the doctor
    confirmed), which ends that session first. Starting again for the same resident extends it.
    `arm` ('left'/'right'): the arm the BP is measured on (the health check has both); choosing
    another arm for the same resident ends the session and opens one for that arm."""
    if not 1 <= int(minutes) <= 120:
        raise ValidationError("a measuring session lasts 1-120 minutes", field="minutes")
    if arm not in ARMS:
        raise ValidationError("the arm is left or right", field="arm")
    expires = utc_iso(now + timedelta(minutes=int(minutes)))
    with store.atomic() as conn:
        if not conn.execute("SELECT 1 FROM residents WHERE id = ? AND voided_at IS NULL", (resident_id,)).fetchone():
            raise NotFound(f"resident {resident_id} does not exist")
        session = open_session(conn, utc_iso(now))
        if session and session["resident_id"] == resident_id and session["arm"] != arm:
            _end(conn, session, END_SWITCHED, now, actor)
            session = None
        if session and session["resident_id"] == resident_id:
            conn.execute("UPDATE measuring_sessions SET expires_at = ? WHERE id = ?", (expires, session["id"]))
            return current(store, now=now)
        if session and not switch:
            raise SessionBusy(_named(conn, session))
        if session:
            _end(conn, session, END_SWITCHED, now, actor)
        cur = conn.execute("INSERT INTO measuring_sessions (resident_id, started_by, started_at, expires_at, arm)"
                           " VALUES (?,?,?,?,?)", (resident_id, actor, utc_iso(now), expires, arm))
        audit.append(conn, actor=actor, action="measuring.start", entity="resident", entity_id=resident_id,
                     at=now, after={"session": cur.lastrowid, "expires_at": expires, "arm": arm})
    return current(store, now=now)


def stop(store, *, now: datetime, actor: str) -> None:
    """结束测量: readings that arrive from now on wait in the inbox."""
    with store.atomic() as conn:
        session = open_session(conn, utc_iso(now))
        if session is not None:
            _end(conn, session, END_STOPPED, now, actor)


def end_on_save(conn: sqlite3.Connection, session_id: int, followup_id: str, *, now: datetime, actor: str) -> None:
    """The visit's form was saved: its session takes no more readings (inside the save's transaction)."""
    row = conn.execute("SELECT id, resident_id, ended_at, expires_at FROM measuring_sessions WHERE id = ?",
                       (session_id,)).fetchone()
    if row is None:
        return
    if row["ended_at"] is None and row["expires_at"] > utc_iso(now):
        _end(conn, dict(row), END_SAVED, now, actor, followup_id=followup_id)
    else:
        conn.execute("UPDATE measuring_sessions SET followup_id = coalesce(followup_id, ?) WHERE id = ?",
                     (followup_id, session_id))


def _end(conn, session: dict, reason: str, now: datetime, actor: str, followup_id: str | None = None) -> None:
    conn.execute("UPDATE measuring_sessions SET ended_at = ?, end_reason = ?, followup_id = ? WHERE id = ?",
                 (utc_iso(now), reason, followup_id, session["id"]))
    audit.append(conn, actor=actor, action="measuring.stop", entity="resident", entity_id=session["resident_id"],
                 at=now, after={"session": session["id"], "reason": reason, "followup_id": followup_id})


def _named(conn, session: dict) -> dict:
    session["resident_name"] = conn.execute("SELECT name FROM residents WHERE id = ?",
                                            (session["resident_id"],)).fetchone()[0]
    session["readings"] = conn.execute("SELECT count(*) FROM readings WHERE session_id = ?",
                                       (session["id"],)).fetchone()[0]
    return session


OPEN_SESSION = ("SELECT id, resident_id, started_by, started_at, expires_at, arm FROM measuring_sessions"
                " WHERE ended_at IS NULL AND expires_at > ? AND started_at <= ? AND device_id IS NULL"
                " ORDER BY started_at DESC LIMIT 1")
# A check-day station's session (edge.core.healthcheck.checkday): one device, one resident.
OPEN_DEVICE_SESSION = ("SELECT id, resident_id, started_by, started_at, expires_at, arm, device_id"
                       " FROM measuring_sessions WHERE device_id = ? AND ended_at IS NULL AND expires_at > ?"
                       " AND started_at <= ? ORDER BY started_at DESC LIMIT 1")


def open_session(conn: sqlite3.Connection, at: str) -> dict | None:
    """The session open at time `at` (ISO UTC), if any."""
    row = conn.execute(OPEN_SESSION, (at, at)).fetchone()
    return dict(row) if row else None


def open_device_session(conn: sqlite3.Connection, device_id: str, at: str) -> dict | None:
    """The station session of this device open at `at`, if any: its readings go to its resident."""
    row = conn.execute(OPEN_DEVICE_SESSION, (device_id, at, at)).fetchone()
    return dict(row) if row else None


def start_for_device(conn: sqlite3.Connection, resident_id: str, device_id: str, *, now: datetime, actor: str,
                     arm: str | None = None, minutes: int = DEFAULT_MINUTES) -> int:
    """A station calls a resident: its device measures that resident only (the device's previous
    session ends: one device, one resident at a time). Inside the caller's transaction."""
    if arm not in ARMS:
        raise ValidationError("the arm is left or right", field="arm")
    previous = open_device_session(conn, device_id, utc_iso(now))
    if previous:
        _end(conn, previous, END_SWITCHED, now, actor)
    cur = conn.execute("INSERT INTO measuring_sessions (resident_id, started_by, started_at, expires_at, arm,"
                       " device_id) VALUES (?,?,?,?,?,?)", (resident_id, actor, utc_iso(now),
                                                            utc_iso(now + timedelta(minutes=minutes)), arm, device_id))
    audit.append(conn, actor=actor, action="measuring.start", entity="resident", entity_id=resident_id, at=now,
                 after={"session": cur.lastrowid, "device_id": device_id, "arm": arm})
    return cur.lastrowid


def end_for_device(conn: sqlite3.Connection, device_id: str, *, now: datetime, actor: str) -> None:
    session = open_device_session(conn, device_id, utc_iso(now))
    if session:
        _end(conn, session, END_STOPPED, now, actor)


def current(store, *, now: datetime) -> dict | None:
    """The open session with its resident's name, for the banner on every page."""
    session = store.one(OPEN_SESSION, (utc_iso(now), utc_iso(now)))
    return _named(store.conn, session) if session else None


def visit_session(store, resident_id: str, form: str, *, since: datetime) -> dict | None:
    """The measuring session of this visit: the resident's latest session started since `since`
    (the clinic's day) that no saved follow-up on this form used yet. None: nothing was measured."""
    row = store.one("SELECT s.id, s.resident_id, s.started_at, s.expires_at, s.ended_at, s.end_reason"
                    " FROM measuring_sessions s WHERE s.resident_id = ? AND s.started_at >= ?"
                    " AND NOT EXISTS (SELECT 1 FROM followups f WHERE f.session_id = s.id AND f.form = ?"
                    "   AND f.voided_at IS NULL)"
                    " ORDER BY s.started_at DESC LIMIT 1", (resident_id, utc_iso(since), form))
    return row


def session_measurements(store, session_id: int) -> list[dict[str, Any]]:
    """The valid readings the session took, one entry per measurement (a BP is SYS+DIA+pulse from
    one device at one time), oldest first."""
    rows = store.query(f"SELECT {READING_COLUMNS}, meta FROM readings WHERE session_id = ? AND status = 'valid'"
                       " ORDER BY effective_time, id", (session_id,))
    return _grouped(rows, newest_first=False)


def _grouped(rows: list[dict], *, newest_first: bool) -> list[dict]:
    order = {c: n for n, c in enumerate(BP_CODES)}   # systolic, diastolic, pulse, then the rest
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = (r["device_id"], r["effective_time"])
        g = groups.setdefault(key, {"device_id": r["device_id"], "effective_time": r["effective_time"],
                                    "receive_time": r["receive_time"], "readings": []})
        g["readings"].append(r)
    for g in groups.values():
        g["readings"].sort(key=lambda r: (order.get(r["code"], 9), r["code"]))
    out = list(groups.values())
    return out if newest_first else sorted(out, key=lambda g: g["effective_time"])


READING_COLUMNS = ("id, device_id, code, value, unit, effective_time, receive_time, status, reason, resident_id,"
                   " assigned_by, assigned_at, dismissed_at, dismiss_reason, voided_at, void_reason")


def inbox(store, *, limit: int = 200) -> list[dict[str, Any]]:
    """Readings nobody has claimed, newest first, grouped by device and time (one BP = SYS+DIA+pulse)."""
    rows = store.query(f"SELECT {READING_COLUMNS} FROM readings WHERE resident_id IS NULL AND dismissed_at IS NULL"
                       " AND status != 'voided' ORDER BY receive_time DESC, id LIMIT ?", (limit,))
    return _grouped(rows, newest_first=True)


def today(store, *, since: datetime, limit: int = 12) -> list[dict[str, Any]]:
    """Residents whose readings were taken since `since` (today's patients), latest first."""
    # readings first (the index that starts with effective_time holds only today's rows), then their residents
    return store.query("SELECT r.id, r.name, r.sex, r.birth_date, x.last_time FROM"
                       " (SELECT resident_id, max(effective_time) AS last_time FROM readings"
                       "  INDEXED BY readings_period_source WHERE effective_time >= ? AND resident_id IS NOT NULL"
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
