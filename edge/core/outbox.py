"""The outbox: every clinical change, written in the same transaction as the change itself.

The sync client reads it in `seq` order (urgent records first) and marks ranges acknowledged
once the hub's signed receipt says they are stored. Nothing here talks to the network.
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from .reading import utc_iso

PRIORITY_BULK = 0
PRIORITY_URGENT = 10   # referral alerts go ahead of bulk history


def add(conn: sqlite3.Connection, *, kind: str, record_id: str, payload: dict[str, Any], at: datetime,
        version: int = 1, priority: int = PRIORITY_BULK) -> int:
    if not conn.in_transaction:
        raise RuntimeError("outbox.add must run inside the change's transaction")
    cur = conn.execute(
        "INSERT INTO outbox (kind, record_id, version, priority, payload, created_at) VALUES (?,?,?,?,?,?)",
        (kind, record_id, version, priority,
         json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str), utc_iso(at)))
    return cur.lastrowid


def backlog(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL AND quarantined_at IS NULL"
                        ).fetchone()[0]
