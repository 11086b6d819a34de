"""`ingest()`: the only way readings enter the store.

One call is one transaction: for each new reading its row, its outbox entry and its audit entry
(docs/architecture.md, the data's way). Drivers call it with everything that arrived since their last commit
(group commit) and acknowledge to the device only after it returns.
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

from . import audit, codes, field_seal, outbox
from .errors import StoreError
from .clock import KnownTime, SystemClock, known_time
from .field_migration import seal_json
from .patient_match import resident_for_patient_id
from .reading import (STATUS_REJECTED, STATUS_UNMAPPED, STATUS_VALID, Reading, finite_number, json_safe,
                      storable_time, utc_iso)


LAST_SEEN_EVERY = timedelta(minutes=1)
STATUS_REFUSED = "refused"   # an outcome only: nothing was stored


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str
    reason: str | None
    duplicate: bool          # already stored before this call: nothing was written
    resident_id: str | None = None


def ingest(store, readings: Iterable[Reading], *, clock=None) -> list[Outcome]:
    """Store readings idempotently; returns one Outcome per reading, in order."""
    clock = clock or SystemClock()
    readings = list(readings)
    if not readings:
        return []
    anchor = clock.anchor()
    outcomes = []
    with store.atomic() as conn:
        known = known_time(conn, anchor)     # the box clock judged against the hub's signed time
        for r in readings:
            outcomes.append(_store_one(conn, r, anchor, known))
    return outcomes


@dataclass
class Group:
    """The readings of one device message, accepted or refused together; `note(conn)` writes
    what else must be committed with them (e.g. how the message was delivered), `then(conn,
    outcomes)` what depends on how they were stored (e.g. a correction voiding an earlier result)."""
    readings: Sequence[Reading]
    note: Callable[[sqlite3.Connection], None] | None = None
    then: Callable[[sqlite3.Connection, list[Outcome]], None] | None = None


def store_failure(e: BaseException) -> bool:
    """True when the store itself failed (disk full, locked, I/O error, damaged file): nothing
    about the readings is wrong, so they are kept unacknowledged and retried, never refused."""
    return isinstance(e, (sqlite3.OperationalError, OSError, StoreError)) or type(e) is sqlite3.DatabaseError


def commit_groups(store, groups: Sequence[Group], *, clock=None) -> list[list[Outcome] | str]:
    """Commit every group in one transaction (group commit: one fsync). When that fails because of
    what a group holds, bisect: every other group is committed and the failing one gets the reason
    (a str) instead of its outcomes, so one poisonous message can never hold back the others or be
    retried forever. A failure of the store (`store_failure`) is raised for the caller to retry."""
    if not groups:
        return []
    try:
        with store.atomic() as conn:
            results: list[list[Outcome] | str] = []
            for g in groups:
                results.append(ingest(store, g.readings, clock=clock))
                if g.note:
                    g.note(conn)
                if g.then:
                    g.then(conn, results[-1])
        return results
    except Exception as e:
        if store_failure(e):
            raise
        if len(groups) == 1:
            return [f"could not be stored ({type(e).__name__}: {e})"]
        half = len(groups) // 2
        return commit_groups(store, groups[:half], clock=clock) + commit_groups(store, groups[half:], clock=clock)


def _store_one(conn: sqlite3.Connection, r: Reading, anchor, known: KnownTime) -> Outcome:
    r.receive_time = r.receive_time or anchor.wall
    r.boot_id = r.boot_id or anchor.boot_id
    # to the millisecond, as every time of a reading (docs/time.md): a batch then sends it as a
    # few bits beside receive_time (sync/record_columns.py "fx"), not as 8 bytes of float noise
    r.monotonic = round(anchor.monotonic, 3) if r.monotonic is None else r.monotonic
    time_problem = _drop_unstorable_time(r)
    rid = r.id
    existing = conn.execute("SELECT status, reason, resident_id FROM readings WHERE id = ?", (rid,)).fetchone()
    if existing:
        return Outcome(rid, existing[0], existing[1], True, existing[2])
    device = conn.execute("SELECT resident_id FROM devices WHERE id = ? AND removed_at IS NULL",
                          (r.device_id,)).fetchone()
    if device is None:  # nothing can be stored for a device the clinic does not know
        return Outcome(rid, STATUS_REFUSED, f"device {r.device_id} is not registered at this clinic", False)

    value, unit, status, reason = normalise(r)
    if time_problem and status == STATUS_VALID:
        status, reason = STATUS_REJECTED, time_problem
    resident_id, session_id = attach(conn, r, device[0])
    # before 2025 or ahead of the best known time: corrected from (boot_id, monotonic) at the next
    # signed exchange with the hub (sync.client.timefix); a device's own wrong time is not used
    clock_status = "ok" if _receive_time_ok(r, anchor, known) else "suspect"
    effective = r.device_time if (r.device_time and known.device_time_ok(r.device_time)) else r.receive_time
    row = {
        "id": rid, "device_id": r.device_id, "code": r.code, "value": value, "unit": unit,
        "value_as_sent": finite_number(r.value), "unit_as_sent": r.unit,
        "device_time": utc_iso(r.device_time), "receive_time": utc_iso(r.receive_time),
        "effective_time": utc_iso(effective), "boot_id": r.boot_id, "monotonic": r.monotonic,
        "clock_status": clock_status, "transport": r.transport, "raw": _raw_at_rest(conn, r), "status": status,
        "reason": reason, "meta": json.dumps(json_safe(_meta_at_rest(conn, r.meta)), ensure_ascii=False, default=str,
                                             allow_nan=False),
        "resident_id": resident_id, "session_id": session_id,
    }
    conn.execute(f"INSERT INTO readings ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
    # at most once a minute per device, of receive time or of the readings' own time (a meter
    # uploading its memory sends readings older than now): each extra page is SD-card wear
    conn.execute("UPDATE devices SET last_seen = :t, last_reading_at = max(coalesce(last_reading_at, ''), :e)"
                 " WHERE id = :d AND (last_seen IS NULL OR last_seen < :stale"
                 " OR coalesce(last_reading_at, '') < :e_stale)",
                 {"t": row["receive_time"], "e": row["effective_time"], "d": r.device_id,
                  "stale": utc_iso(r.receive_time - LAST_SEEN_EVERY),
                  "e_stale": utc_iso(effective - LAST_SEEN_EVERY)})
    # the audit entry names the reading (entity_id) and the device (actor); it repeats only what a
    # reviewer compares, to keep each ingest commit small
    summary = {k: row[k] for k in ("code", "value", "unit", "status", "resident_id") if row[k] is not None}
    outbox.add(conn, kind="reading", record_id=rid, at=r.receive_time, payload=_upstream(row))
    audit.append(conn, actor=f"device:{r.device_id}", action="reading.create", entity="reading",
                 entity_id=rid, at=r.receive_time, after=summary)
    return Outcome(rid, status, reason, False, resident_id)


def _drop_unstorable_time(r: Reading) -> str | None:
    """A device time that cannot be kept (beyond year 9999 in UTC...) is dropped, kept as text in
    meta, and makes the reading rejected; the parsers refuse such times already, this is the net."""
    if storable_time(r.device_time):
        return None
    r.meta = {**(r.meta or {}), "device_time_as_sent": str(r.device_time)}
    r.device_time = None
    return "the device time is out of range (kept in meta as device_time_as_sent)"


def _described(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 40:
        return f"a number of {len(str(abs(value))) if abs(value) < 10 ** 4000 else 'over 4000'} digits"
    return repr(value)[:40]
def _receive_time_ok(r: Reading, anchor, known: KnownTime) -> bool:
    if r.receive_time == anchor.wall:
        return known.wall_ok()
    return KnownTime(r.receive_time, None, known.latest).wall_ok()   # set by the caller: judged alone


def normalise(r: Reading) -> tuple[float | None, str, str, str | None]:
    """(value, unit, status, reason) in the code's canonical unit, judged for plausibility.

    Only a finite number is ever a value: NaN, infinities, bools and numbers beyond a float are
    rejected with the reason (docs/devices.md, "Numbers and times")."""
    code = codes.lookup(r.code)
    sent = finite_number(r.value)
    if code is None:
        return sent, r.unit, STATUS_UNMAPPED, f"code {r.code} is not mapped; kept as sent"
    if r.value is None:
        return None, code.unit, STATUS_REJECTED, r.no_value_reason or "the device sent no value"
    if sent is None:
        return None, code.unit, STATUS_REJECTED, f"the device sent {_described(r.value)}, not a finite number"
    try:
        value = code.to_canonical(sent, r.unit)
    except codes.UnitError as e:
        return None, code.unit, STATUS_REJECTED, str(e)
    if not math.isfinite(value):
        return None, code.unit, STATUS_REJECTED, f"{sent:g} {r.unit} is beyond any possible value"
    problem = code.implausible(value)
    if problem:
        return value, code.unit, STATUS_REJECTED, problem
    return value, code.unit, STATUS_VALID, None


def _meta_at_rest(conn, meta):
    """The patient id an analyser sent (an ID number) is sealed when the node encrypts ID numbers
    (docs/field-encryption.md)."""
    seal = field_seal.of(conn)
    return seal_json(seal, meta) if seal and meta else meta


def _raw_at_rest(conn, r: Reading) -> str:
    """What an analyser sent with a patient id carries that ID number (ASTM P, HL7 PID): sealed whole."""
    seal = field_seal.of(conn)
    if seal and r.raw and (r.meta or {}).get("patient_id"):
        return seal.seal("raw", r.raw)
    return r.raw


def attach(conn: sqlite3.Connection, r: Reading, bound_resident: str | None) -> tuple[str | None, int | None]:
    """(resident, measuring session) of a new reading. The resident: the one a personal device is
    bound to, else the one whose ID number or health-record number the device sent as patient id
    (analysers, monitors), else the resident of the open "measuring now" session, else nobody yet
    (the reading waits in the doctor's inbox). A check-day station's session for this very device
    comes before the clinic's "measuring now" session. The session is kept only when the reading is its
    resident's: the session's readings are what that visit's form is filled from."""
    from .measuring import open_device_session, open_session
    at = utc_iso(r.receive_time)
    session = open_device_session(conn, r.device_id, at) or open_session(conn, at)   # a station's device first
    resident = bound_resident or resident_for_patient_id(conn, (r.meta or {}).get("patient_id"))
    if resident is None and session:
        resident = session["resident_id"]
    if session and session["resident_id"] == resident:
        return resident, session["id"]
    return resident, None


_UPSTREAM = ("id", "device_id", "code", "value", "unit", "device_time", "receive_time", "effective_time",
             "boot_id", "monotonic", "clock_status", "transport", "status", "reason", "resident_id")


def _upstream(row: dict) -> dict:
    """What the county receives for a reading (the raw payload stays on the node)."""
    return {k: row[k] for k in _UPSTREAM}


def latest(store, limit: int = 50, *, since: datetime | None = None) -> list[dict]:
    sql = ("SELECT id, device_id, code, value, unit, effective_time, resident_id, status, reason, transport,"
           " device_time, receive_time, clock_status FROM readings")
    params: list = []
    if since is not None:
        sql += " WHERE effective_time >= ?"
        params.append(utc_iso(since))
    sql += " ORDER BY effective_time DESC, id LIMIT ?"
    params.append(limit)
    return store.query(sql, params)



def carry_forward(store, source_db: str, *, actor: str, now: datetime) -> tuple[int, int]:
    """Readings in another copy of this database (the one a failed update wrote to before it was
    rolled back) that this store lacks: inserted with their ids unchanged, each with its outbox and
    audit entry, in one transaction. A device saw them acknowledged; restoring an older backup must
    not lose them. Returns (carried, skipped): a reading of a device this copy does not know is
    skipped (it stays in the source file); one of a resident it does not know goes to the inbox.
    """
    conn = store.conn
    conn.execute("ATTACH DATABASE ? AS src", (str(source_db),))  # not allowed inside a transaction
    try:
        with store.atomic():
            mine = [r[1] for r in conn.execute("PRAGMA main.table_info(readings)")]
            theirs = {r[1] for r in conn.execute("PRAGMA src.table_info(readings)")}
            cols = [c for c in mine if c in theirs]
            rows = conn.execute(f"SELECT {', '.join('r.' + c for c in cols)} FROM src.readings r"
                                " WHERE r.id NOT IN (SELECT id FROM main.readings) ORDER BY r.rowid").fetchall()
            devices = {r[0] for r in conn.execute("SELECT id FROM main.devices")}
            residents = {r[0] for r in conn.execute("SELECT id FROM main.residents")}
            carried = skipped = 0
            for values in rows:
                row = dict(zip(cols, values))
                if row["device_id"] not in devices:
                    skipped += 1
                    continue
                if row.get("resident_id") not in residents:
                    row["resident_id"] = None
                conn.execute(f"INSERT INTO readings ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             tuple(row.values()))
                outbox.add(conn, kind="reading", record_id=row["id"], at=now,
                           payload={k: row.get(k) for k in _UPSTREAM})
                audit.append(conn, actor=actor, action="reading.carry_forward", entity="reading",
                             entity_id=row["id"], at=now,
                             after={k: row[k] for k in ("code", "value", "unit", "status") if row.get(k) is not None})
                carried += 1
    finally:
        conn.execute("DETACH DATABASE src")
    return carried, skipped
