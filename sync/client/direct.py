"""A node that sends its own records' standard documents to the county platform itself
(docs/interop.md §6): `[direct] kind` fhir, cda or drop, and `target`.

The same parts as the hub's forwarder (sync/hub/forwarding.py): the documents of
sync/standards/documents.py, built from the outbox rows' payloads, so a record version has the
same 文档流水号 whichever side sends it; the transports and delivery states of sync/delivery.
Every outbox row of a kind with a document gets one `direct_deliveries` row (sync/client/tables.py,
migration 210); each round sends what is due, residents first, one document per request, and
records each outcome in its own transaction right after its send. A refused document is never
sent again for that version and never holds up the others; a process killed between a send and
its record sends that one document again next time, which the platform stores once.
"""
from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from edge.core.reading import parse_iso, utc_iso
from sync.delivery import states, transport
from sync.standards import StandardsError, documents
from sync.standards.identity import Clinic

from . import state as client_state, status
from .batcher import _payload as opened
from .errors import SyncError

KINDS = documents.KINDS
ROUND_NOTED_EVERY = timedelta(minutes=30)


class DirectError(SyncError):
    """[direct] is set in a way this node cannot send with (says which key and why)."""


@dataclass(frozen=True)
class Profile:
    kind: str
    target: str
    clinic: Clinic


def profile(node) -> Profile | None:
    """This node's outbound profile, or None when it does not send directly ([direct] kind empty)."""
    cfg = node.config["direct"]
    if not cfg["kind"]:
        return None
    problem = transport.target_problem(cfg["kind"], cfg["target"])
    if problem:
        raise DirectError(f"[direct] {problem}")
    # the name the hub knows the node by, so a record has one document id whichever side sends it
    enrolled = node.store.scalar("SELECT node FROM sync_enrollment WHERE id = 1")
    name = enrolled or node.config["node"]["name"]
    return Profile(cfg["kind"], cfg["target"], Clinic(name, node.config["node"]["clinic_name"], cfg["clinic_code"]))


def enqueue(store, *, now: datetime) -> int:
    """A pending delivery for every record version in the outbox that has none yet."""
    at = utc_iso(now)
    marks = ",".join("?" * len(KINDS))
    with store.atomic() as conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO direct_deliveries (kind, record_id, version, seq, state, next_at, created_at,"
            " updated_at) SELECT o.kind, o.record_id, o.version, min(o.seq), 'pending', ?, ?, ? FROM outbox o"
            f" WHERE o.kind IN ({marks}) AND NOT EXISTS (SELECT 1 FROM direct_deliveries d WHERE d.kind = o.kind"
            " AND d.record_id = o.record_id AND d.version = o.version)"
            " GROUP BY o.kind, o.record_id, o.version", (at, at, at, *KINDS))
        return cur.rowcount


def _due(store, now: datetime, limit: int) -> list[dict[str, Any]]:
    return store.query(
        "SELECT * FROM direct_deliveries WHERE state IN ('pending', 'retrying') AND next_at <= ?"
        " ORDER BY kind != 'resident', seq LIMIT ?", (utc_iso(now), limit))   # the person before their visits


def _record_payload(conn: sqlite3.Connection, kind: str, record_id: str, version: int | None = None) -> dict | None:
    sql = "SELECT payload FROM outbox WHERE kind = ? AND record_id = ?"
    args: tuple = (kind, record_id)
    sql += " AND version = ? ORDER BY seq LIMIT 1" if version is not None else " ORDER BY version DESC, seq DESC LIMIT 1"
    row = conn.execute(sql, args + ((version,) if version is not None else ())).fetchone()
    return opened(conn, row[0]) if row else None


def _document(store, row: dict, clinic: Clinic) -> documents.Document:
    with store.atomic() as conn:
        payload = _record_payload(conn, row["kind"], row["record_id"], row["version"])
        resident = _record_payload(conn, "resident", payload.get("resident_id", "")) \
            if row["kind"] in ("followup", "health_check") else None
    return documents.build(row["kind"], payload, resident, clinic)


def _record(store, row: dict, state: str, reason: str | None, doc_id: str | None, *, now: datetime,
            rand: Callable[[], float]) -> None:
    values = states.after(row["attempts"], state, reason, doc_id, now=now, rand=rand, iso=utc_iso)
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with store.atomic() as conn:
        conn.execute(f"UPDATE direct_deliveries SET {sets} WHERE kind = :_kind AND record_id = :_rid"
                     " AND version = :_version",
                     {**values, "_kind": row["kind"], "_rid": row["record_id"], "_version": row["version"]})


def deliver(store, prof: Profile, row: dict, *, now: datetime, opener=None,
            rand: Callable[[], float] = random.random) -> str:
    """Send one due delivery and record its outcome; returns the new state."""
    try:
        doc = _document(store, row, prof.clinic)
    except (StandardsError, *states.MALFORMED) as e:
        state, reason = states.of_build_error(e)
        _record(store, row, state, reason, None, now=now, rand=rand)
        return state
    kw = {"opener": opener} if opener else {}
    state, reason = states.of_outcome(transport.send(prof.kind, prof.target, doc, **kw))
    _record(store, row, state, reason, doc.doc_id, now=now, rand=rand)
    return state


def send_once(node, *, now: Callable[[], datetime], limit: int = 500, opener=None,
              rand: Callable[[], float] = random.random) -> dict[str, int]:
    """One round: enqueue the new record versions and send what is due; counts of new and of each
    outcome. {} when this node does not send directly."""
    prof = profile(node)
    if prof is None:
        return {}
    counts = {"new": enqueue(node.store, now=now())}
    for row in _due(node.store, now(), limit):
        state = deliver(node.store, prof, row, now=now(), opener=opener, rand=rand)
        counts[state] = counts.get(state, 0) + 1
    _round_done(node.store, now())
    return counts


def _round_done(store, at: datetime) -> None:
    """Note that a round ran to its end (sync status's `direct_round`, read by /healthz): written
    at most every ROUND_NOTED_EVERY, not every round (a round every 5 minutes is 288 commits a day
    on the SD card)."""
    last = parse_iso(status.setting(store, "direct_round"))
    if last is None or at - last >= ROUND_NOTED_EVERY or at < last:
        with store.atomic() as conn:
            client_state.put(conn, "direct_round", utc_iso(at), at)


def listing(store, *, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Deliveries, refused first (with the platform's reason), then retrying, pending, delivered."""
    where, args = ("WHERE state = ?", (state,)) if state else ("", ())
    return store.query(
        f"SELECT kind, record_id, version, doc_id, state, attempts, next_at, reason, updated_at, delivered_at"
        f" FROM direct_deliveries {where} ORDER BY CASE state WHEN 'refused' THEN 0 WHEN 'retrying' THEN 1"
        f" WHEN 'pending' THEN 2 ELSE 3 END, updated_at DESC, seq LIMIT ?", (*args, limit))

