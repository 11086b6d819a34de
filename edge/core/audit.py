"""Append-only, hash-chained audit log (全程留痕).

Each entry's hash covers its content and the previous entry's hash, so an edited, deleted or
inserted row breaks the chain at that point. `verify()` names the first broken entry.
Triggers in the schema refuse UPDATE and DELETE; the chain catches what bypasses them
(a raw edit of the file).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .reading import utc_iso

GENESIS = "0" * 64


def _canonical(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _digest(seq: int, at: str, actor: str, action: str, entity: str, entity_id: str,
            before: str | None, after: str | None, prev_hash: str) -> str:
    body = json.dumps([seq, at, actor, action, entity, entity_id, before, after, prev_hash],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def append(conn: sqlite3.Connection, *, actor: str, action: str, entity: str, entity_id: str,
           at: datetime, before: Any = None, after: Any = None) -> int:
    """Add one entry. Call inside the transaction that makes the change it records."""
    if not conn.in_transaction:
        raise RuntimeError("audit.append must run inside the change's transaction")
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq = (last[0] + 1) if last else 1
    prev = last[1] if last else GENESIS
    at_s = utc_iso(at)
    b, a = _canonical(before), _canonical(after)
    h = _digest(seq, at_s, actor, action, entity, entity_id, b, a, prev)
    conn.execute("INSERT INTO audit (seq, at, actor, action, entity, entity_id, before, after, prev_hash, hash)"
                 " VALUES (?,?,?,?,?,?,?,?,?,?)", (seq, at_s, actor, action, entity, entity_id, b, a, prev, h))
    return seq


@dataclass
class ChainReport:
    ok: bool
    entries: int
    first_broken: int | None = None
    reason: str = ""


def verify(conn: sqlite3.Connection) -> ChainReport:
    prev, expected_seq, count = GENESIS, 1, 0
    for row in conn.execute("SELECT seq, at, actor, action, entity, entity_id, before, after, prev_hash, hash"
                            " FROM audit ORDER BY seq"):
        seq, at, actor, action, entity, entity_id, before, after, prev_hash, h = tuple(row)
        count += 1
        if seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"entry {expected_seq} is missing (next is {seq})")
        if prev_hash != prev:
            return ChainReport(False, count, seq, f"entry {seq} does not follow entry {seq - 1}")
        if _digest(seq, at, actor, action, entity, entity_id, before, after, prev_hash) != h:
            return ChainReport(False, count, seq, f"entry {seq} was changed after it was written")
        prev, expected_seq = h, seq + 1
    return ChainReport(True, count)


def history(conn: sqlite3.Connection, entity: str, entity_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT seq, at, actor, action, before, after FROM audit"
                        " WHERE entity = ? AND entity_id = ? ORDER BY seq", (entity, entity_id))
    out = []
    for seq, at, actor, action, before, after in rows:
        out.append({"seq": seq, "at": at, "actor": actor, "action": action,
                    "before": json.loads(before) if before else None,
                    "after": json.loads(after) if after else None})
    return out
