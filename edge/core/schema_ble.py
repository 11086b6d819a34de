"""Bluetooth driver tables (migrations 300-349): a device's radio address, and how far its
stored records have been downloaded (the glucose meter's last sequence number), kept per device
so an interrupted download resumes where the committed readings end."""
from __future__ import annotations

import sqlite_utils

from .migrations import migration


@migration(300, "ble: device address, download progress per device")
def ble_tables(db: sqlite_utils.Database) -> None:
    for sql in (
        "ALTER TABLE devices ADD COLUMN ble_address TEXT",
        """CREATE UNIQUE INDEX devices_ble_address ON devices(ble_address)
           WHERE ble_address IS NOT NULL AND removed_at IS NULL""",
        """CREATE TABLE ble_state (
            device_id TEXT PRIMARY KEY REFERENCES devices(id),
            last_sequence INTEGER CHECK (last_sequence BETWEEN 0 AND 65535),
            last_connected_at TEXT,
            last_session TEXT,
            updated_at TEXT NOT NULL
        )""",
    ):
        db.execute(sql)
