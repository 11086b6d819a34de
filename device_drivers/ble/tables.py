"""Bluetooth driver tables (migrations 300-349) and the only SQL on them: a device's radio address
(`devices.ble_address`, a column this package adds to core's device registry), and how far its
stored records have been downloaded (the glucose meter's last sequence number), kept per device
so an interrupted download resumes where the committed readings end.

Registered through the `clinic_edge.migrations` entry point "ble" (pyproject.toml). Imports
edge.core only. The writers take the connection of the caller's `store.atomic()` transaction.
"""
from __future__ import annotations

import json
import sqlite3

import sqlite_utils

from edge.core.migrations import migration
from edge.core.reading import utc_iso


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


def address_of(store, device_id: str) -> str | None:
    """The address of a registered (not removed) device, None when it has none."""
    return store.scalar("SELECT ble_address FROM devices WHERE id = ? AND removed_at IS NULL", (device_id,))


def owner_of(store, address: str, *, other_than: str | None = None) -> str | None:
    """The registered device that has `address`, other than `other_than`."""
    return store.scalar("SELECT id FROM devices WHERE ble_address = ? AND id IS NOT ? AND removed_at IS NULL",
                        (address, other_than))


def write_address(conn: sqlite3.Connection, device_id: str, address: str) -> None:
    conn.execute("UPDATE devices SET ble_address = ? WHERE id = ?", (address, device_id))


def ble_devices(store, *, addressed: bool) -> list[dict]:
    """Registered Bluetooth devices with (or without) an address, by id."""
    has = "IS NOT NULL" if addressed else "IS NULL"
    return store.query("SELECT id, kind, name, resident_id, ble_address FROM devices WHERE transport = 'ble'"
                       f" AND removed_at IS NULL AND ble_address {has} ORDER BY id")


def last_sequence(store, device_id: str) -> int | None:
    return store.scalar("SELECT last_sequence FROM ble_state WHERE device_id = ?", (device_id,))


def advance_sequence(conn: sqlite3.Connection, device_id: str, sequence: int, *, now) -> None:
    """Never backwards: a late or repeated record cannot make the next download start earlier."""
    conn.execute(
        "INSERT INTO ble_state (device_id, last_sequence, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT(device_id) DO UPDATE SET last_sequence = max(coalesce(last_sequence, -1),"
        " excluded.last_sequence), updated_at = excluded.updated_at",
        (device_id, sequence, utc_iso(now)))


def write_session(conn: sqlite3.Connection, device_id: str, summary: dict, *, now) -> None:
    conn.execute(
        "INSERT INTO ble_state (device_id, last_connected_at, last_session, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(device_id) DO UPDATE SET last_connected_at = excluded.last_connected_at,"
        " last_session = excluded.last_session, updated_at = excluded.updated_at",
        (device_id, utc_iso(now), json.dumps(summary, ensure_ascii=False, default=str), utc_iso(now)))


def forget_sequence(conn: sqlite3.Connection, device_id: str, *, now) -> None:
    conn.execute("UPDATE ble_state SET last_sequence = NULL, updated_at = ? WHERE device_id = ?",
                 (utc_iso(now), device_id))


def device_extras(store) -> dict[str, dict]:
    """device id -> address, last sequence and last session (decoded) of every Bluetooth device."""
    rows = store.query("SELECT d.id, d.ble_address, s.last_session, s.last_sequence FROM devices d"
                       " LEFT JOIN ble_state s ON s.device_id = d.id WHERE d.transport = 'ble'")
    return {r["id"]: {**r, "last_session": json.loads(r["last_session"]) if r["last_session"] else None}
            for r in rows}
