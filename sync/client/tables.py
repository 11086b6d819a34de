"""Node-side sync tables (migrations 200-299): enrollment, built batches, byte meter, clock
anchors, downlink inbox and resident conflicts; the deliveries of a node that sends its standard
documents to the county platform directly (docs/interop.md §6). The outbox itself is in schema.py."""
from __future__ import annotations

import sqlite_utils

from edge.core.migrations import migration


@migration(200, "sync: enrollment, batches, usage, time anchors, downlink, conflicts")
def sync_tables(db: sqlite_utils.Database) -> None:
    for sql in (
        """CREATE TABLE sync_enrollment (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            node TEXT NOT NULL,
            hub_url TEXT NOT NULL,
            hub_pubkey TEXT NOT NULL,
            enrolled_at TEXT NOT NULL
        )""",
        # A batch is built once (its bytes are kept) so that a resend after a lost receipt or an
        # interrupted upload sends exactly the same signed bytes, resuming at the hub's offset.
        """CREATE TABLE sync_batches (
            batch_id TEXT PRIMARY KEY,
            seq_from INTEGER NOT NULL,
            seq_to INTEGER NOT NULL,
            records INTEGER NOT NULL,
            urgent INTEGER NOT NULL DEFAULT 0,
            kinds TEXT NOT NULL,
            envelope BLOB NOT NULL,
            created_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','acked','abandoned')),
            attempts INTEGER NOT NULL DEFAULT 0,
            receipt TEXT,
            acked_at TEXT
        )""",
        "CREATE INDEX sync_batches_state ON sync_batches(state, urgent, created_at)",
        "CREATE INDEX outbox_batch ON outbox(batch_id)",
        """CREATE TABLE sync_usage (
            day TEXT NOT NULL,
            kind TEXT NOT NULL,
            bytes INTEGER NOT NULL DEFAULT 0,
            records INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, kind)
        )""",
        """CREATE TABLE sync_time_anchors (
            boot_id TEXT NOT NULL,
            monotonic REAL NOT NULL,
            hub_time TEXT NOT NULL,
            wall_time TEXT NOT NULL,
            offset_s REAL NOT NULL,
            rtt_s REAL NOT NULL,
            PRIMARY KEY (boot_id, monotonic)
        )""",
        """CREATE TABLE sync_inbox (
            kind TEXT NOT NULL,
            record_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            payload TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (kind, record_id)
        )""",
        """CREATE TABLE sync_conflicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            record_id TEXT NOT NULL,
            local TEXT NOT NULL,
            remote TEXT NOT NULL,
            remote_version INTEGER NOT NULL,
            detected_at TEXT NOT NULL,
            resolved_at TEXT,
            resolution TEXT,
            UNIQUE (kind, record_id, remote_version)
        )""",
        # The hub version a resident row was last brought in line with (absent = never synced).
        """CREATE TABLE sync_resident_base (
            resident_id TEXT PRIMARY KEY,
            hub_version INTEGER NOT NULL,
            local_version INTEGER NOT NULL
        )""",
    ):
        db.execute(sql)


@migration(210, "sync: deliveries of the standard documents a node sends to the county platform itself")
def direct_deliveries(db: sqlite_utils.Database) -> None:
    # one row per record version of a kind with a standard document (sync/standards/documents.py)
    for sql in (
        """CREATE TABLE direct_deliveries (
            kind TEXT NOT NULL,
            record_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            doc_id TEXT,
            state TEXT NOT NULL CHECK (state IN ('pending','retrying','delivered','refused')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            delivered_at TEXT,
            PRIMARY KEY (kind, record_id, version)
        )""",
        "CREATE INDEX direct_deliveries_due ON direct_deliveries(state, next_at)",
    ):
        db.execute(sql)
