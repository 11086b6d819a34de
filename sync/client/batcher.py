"""The outbox reader: turns pending outbox rows into signed batches and settles receipts.

A batch is built once, in one transaction that stores its signed bytes and stamps its outbox
rows with the batch id; so a crash either leaves the rows unbatched or leaves a complete
batch that is resent byte for byte. Urgent rows (referral alerts) get batches of their own
that go before any bulk batch.
"""
from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge.core import field_seal, outbox
from edge.core.field_migration import open_json
from edge.core.reading import utc_iso

from sync import protocol


BATCH_PURPOSE = "sync batch"


@dataclass(frozen=True)
class Batch:
    batch_id: str
    seq_from: int
    seq_to: int
    records: int
    urgent: bool
    kinds: dict[str, int]
    envelope: bytes


def _row_to_batch(row: dict[str, Any], seal) -> Batch:
    envelope = seal.open_bytes(BATCH_PURPOSE, row["envelope"]) if seal else row["envelope"]
    return Batch(row["batch_id"], row["seq_from"], row["seq_to"], row["records"], bool(row["urgent"]),
                 json.loads(row["kinds"]), envelope)


def _keep(conn, envelope: bytes) -> bytes:
    """The signed batch as it waits in sync_batches: sealed with the field key when the node encrypts
    ID numbers and phones at rest (docs/field-encryption.md), since it carries them opened."""
    seal = field_seal.of(conn)
    return seal.seal_bytes(BATCH_PURPOSE, envelope) if seal else envelope


def pending(store) -> list[Batch]:
    rows = store.query("SELECT * FROM sync_batches WHERE state = 'pending' ORDER BY urgent DESC, created_at, rowid")
    return [_row_to_batch(r, store.fields) for r in rows]


def unbatched_urgent(store) -> int:
    return store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL AND quarantined_at IS NULL"
                        " AND batch_id IS NULL AND priority >= ?", (outbox.PRIORITY_URGENT,))


def next_batch(store, ident, *, limit: int, now: datetime) -> Batch | None:
    """The batch to send now: urgent records first, then a batch already built, then a new one."""
    waiting = pending(store)
    if unbatched_urgent(store) and not any(b.urgent for b in waiting):
        return build(store, ident, limit=limit, now=now, urgent_only=True)
    if waiting:
        return waiting[0]
    return build(store, ident, limit=limit, now=now)


def build(store, ident, *, limit: int, now: datetime, urgent_only: bool = False) -> Batch | None:
    """A new batch of the oldest unbatched rows. The rows are read in one transaction and sealed
    outside it (encoding a large batch takes a while: the upload of the batch before goes on
    meanwhile, see controller.Cycle.uplink), then stored and stamped in a second one that first
    checks the rows are still unbatched; either the whole batch is kept or nothing."""
    sql = ("SELECT seq, kind, record_id, version, priority, payload FROM outbox WHERE acked_at IS NULL"
           " AND quarantined_at IS NULL AND batch_id IS NULL")
    if urgent_only:
        sql += f" AND priority >= {outbox.PRIORITY_URGENT}"
    sql += " ORDER BY priority DESC, seq LIMIT ?"
    with store.atomic() as conn:
        rows = [dict(r) for r in conn.execute(sql, (limit,))]
        if not rows:
            return None
        records = [{"kind": r["kind"], "id": r["record_id"], "version": r["version"],
                    "payload": _payload(conn, r["payload"])} for r in rows]
    seqs = [r["seq"] for r in rows]
    batch_id = new_batch_id()
    urgent = any(r["priority"] >= outbox.PRIORITY_URGENT for r in rows)
    # no "at": the hub keeps when it received the batch, the node when it built it (sync_batches),
    # and no hub reads it: 31 bytes less for every batch (issue 17.4)
    header = {"node": ident.node, "batch": batch_id, "from": min(seqs), "to": max(seqs), "n": len(rows)}
    envelope = protocol.seal(ident.key, header, records)
    kinds = dict(Counter(r["kind"] for r in rows))
    with store.atomic() as conn:
        still = 0
        for part in range(0, len(seqs), 500):      # SQLite's bound parameters per statement
            some = seqs[part:part + 500]
            still += conn.execute(f"SELECT count(*) FROM outbox WHERE seq IN ({','.join('?' * len(some))})"
                                  " AND batch_id IS NULL AND acked_at IS NULL AND quarantined_at IS NULL",
                                  some).fetchone()[0]
        if still != len(seqs):
            return None
        conn.execute("INSERT INTO sync_batches (batch_id, seq_from, seq_to, records, urgent, kinds, envelope,"
                     " created_at) VALUES (?,?,?,?,?,?,?,?)",
                     (batch_id, min(seqs), max(seqs), len(rows), int(urgent), json.dumps(kinds), _keep(conn, envelope),
                      utc_iso(now)))
        conn.executemany("UPDATE outbox SET batch_id = ? WHERE seq = ?", [(batch_id, s) for s in seqs])
    return Batch(batch_id, min(seqs), max(seqs), len(rows), urgent, kinds, envelope)


def new_batch_id() -> str:
    """128 random bits in 22 base64url characters (the hub keeps batch ids of every node in one
    table): 10 characters fewer than hex in the upload's path, the envelope and the receipt."""
    return secrets.token_urlsafe(16)


def _payload(conn, text: str) -> Any:
    """The record as the hub gets it: ID numbers and phones sealed at rest are opened
    (docs/field-encryption.md); the batch itself is kept sealed (see `_keep`)."""
    try:
        value = json.loads(text)
        seal = field_seal.of(conn)
        return open_json(seal, value) if seal else value
    except ValueError:
        return {"_unparsable": text}   # the hub rejects it by itself; the node quarantines it


def settle(store, batch: Batch, receipt: dict[str, Any], *, now: datetime) -> int:
    """Apply a verified receipt: acknowledge the batch's rows, quarantine the rejected ones."""
    at = utc_iso(now)
    with store.atomic() as conn:
        state = conn.execute("SELECT state FROM sync_batches WHERE batch_id = ?", (batch.batch_id,)).fetchone()
        if state is None or state[0] != "pending":
            return 0
        for r in receipt.get("rejected", []):
            conn.execute("UPDATE outbox SET quarantined_at = ?, quarantine_reason = ? WHERE batch_id = ?"
                         " AND kind = ? AND record_id = ? AND version = ?",
                         (at, str(r.get("reason"))[:500], batch.batch_id, r.get("kind"), r.get("id"),
                          r.get("version")))
        done = conn.execute("UPDATE outbox SET acked_at = ? WHERE batch_id = ? AND acked_at IS NULL"
                            " AND quarantined_at IS NULL", (at, batch.batch_id)).rowcount
        conn.execute("UPDATE sync_batches SET state = 'acked', receipt = ?, acked_at = ?, envelope = x''"
                     " WHERE batch_id = ?", (json.dumps(receipt), at, batch.batch_id))
    return done


def abandon(store, batch: Batch, *, now: datetime) -> None:
    """Unbuild a batch the hub refused as too large (413): its rows go back to be re-batched."""
    with store.atomic() as conn:
        conn.execute("UPDATE sync_batches SET state = 'abandoned', envelope = x'' WHERE batch_id = ?"
                     " AND state = 'pending'", (batch.batch_id,))
        conn.execute("UPDATE outbox SET batch_id = NULL WHERE batch_id = ? AND acked_at IS NULL",
                     (batch.batch_id,))


def note_attempt(store, batch: Batch) -> None:
    with store.atomic() as conn:
        conn.execute("UPDATE sync_batches SET attempts = attempts + 1 WHERE batch_id = ?", (batch.batch_id,))


def build_all(store, ident, *, limit: int, now: datetime) -> list[Batch]:
    """Batch everything still unbatched (for a USB bundle) and return every pending batch."""
    while build(store, ident, limit=limit, now=now):
        pass
    return pending(store)
