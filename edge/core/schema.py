"""Foundation tables: devices, residents (minimal), readings, outbox, audit."""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements as _run


@migration(1, "devices, residents, readings, outbox, audit")
def foundation(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """CREATE TABLE residents (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            id_number TEXT UNIQUE,
            sex TEXT CHECK (sex IN ('0','1','2','9')),
            birth_date TEXT,
            phone TEXT,
            address TEXT,
            health_record_no TEXT UNIQUE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            voided_at TEXT,
            void_reason TEXT
        )""",
        """CREATE TABLE devices (
            id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
            kind TEXT NOT NULL,
            transport TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            secret_hash TEXT,
            resident_id TEXT REFERENCES residents(id),
            created_at TEXT NOT NULL,
            removed_at TEXT,
            last_seen TEXT,
            last_reading_at TEXT,
            last_error TEXT,
            last_error_at TEXT,
            error_count INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE readings (
            id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL REFERENCES devices(id),
            code TEXT NOT NULL,
            value REAL,
            unit TEXT NOT NULL,
            value_as_sent REAL,
            unit_as_sent TEXT NOT NULL,
            device_time TEXT,
            receive_time TEXT NOT NULL,
            effective_time TEXT NOT NULL,
            boot_id TEXT NOT NULL,
            monotonic REAL NOT NULL,
            clock_status TEXT NOT NULL DEFAULT 'ok' CHECK (clock_status IN ('ok','suspect','corrected','uncorrectable')),
            transport TEXT NOT NULL,
            raw TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('valid','rejected','unmapped','voided')),
            reason TEXT,
            meta TEXT NOT NULL DEFAULT '{}',
            resident_id TEXT REFERENCES residents(id)
        )""",
        "CREATE INDEX readings_effective ON readings(effective_time)",
        "CREATE INDEX readings_resident ON readings(resident_id, code, effective_time)",
        "CREATE INDEX readings_device ON readings(device_id, effective_time)",
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            record_id TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            priority INTEGER NOT NULL DEFAULT 0,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            acked_at TEXT,
            batch_id TEXT,
            quarantined_at TEXT,
            quarantine_reason TEXT
        )""",
        "CREATE INDEX outbox_pending ON outbox(acked_at, quarantined_at, priority, seq)",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            entity TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            before TEXT,
            after TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        # history is looked up for residents, forms, devices; a per-reading index entry would put
        # a random page into every ingest commit
        "CREATE INDEX audit_entity ON audit(entity, entity_id) WHERE entity != 'reading'",
        # Append-only: the database itself refuses to change or remove an audit row.
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
        # Clinical rows are voided, never deleted.
        """CREATE TRIGGER readings_no_delete BEFORE DELETE ON readings
           BEGIN SELECT RAISE(ABORT, 'readings are voided with a reason, never deleted'); END""",
        """CREATE TRIGGER residents_no_delete BEFORE DELETE ON residents
           BEGIN SELECT RAISE(ABORT, 'residents are voided with a reason, never deleted'); END""",
        """CREATE TABLE node_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    )
