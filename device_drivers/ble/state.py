"""What the BLE driver keeps in the store: device addresses and download progress.

Readings go through `ingest()` only. The glucose meter's last sequence number is written in the
same transaction as the readings it covers (`store_readings`), so after a crash or a dropped link
the next request ("sequence >= last + 1") starts exactly after what is committed.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Iterable

from edge.core import audit
from edge.core.errors import NotFound, ValidationError
from edge.core.ingest import Outcome, ingest
from edge.core.reading import Reading, utc_iso

ADDRESS = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}")


def check_address(address: str) -> str:
    a = (address or "").strip().upper().replace("-", ":")
    if not ADDRESS.fullmatch(a):
        raise ValidationError(f"Bluetooth address {address!r} is not valid: use six hex pairs like "
                              "C0:26:DA:01:02:03 (shown by `clinic-edge device scan`)", field="address")
    return a


def set_address(store, device_id: str, address: str, *, now: datetime, actor: str = "system") -> str:
    address = check_address(address)
    with store.atomic() as conn:
        row = conn.execute("SELECT ble_address FROM devices WHERE id = ? AND removed_at IS NULL",
                           (device_id,)).fetchone()
        if row is None:
            raise NotFound(f"device {device_id} is not registered")
        other = conn.execute("SELECT id FROM devices WHERE ble_address = ? AND id != ? AND removed_at IS NULL",
                             (address, device_id)).fetchone()
        if other:
            raise ValidationError(f"address {address} already belongs to device {other[0]}", field="address")
        conn.execute("UPDATE devices SET ble_address = ? WHERE id = ?", (address, device_id))
        audit.append(conn, actor=actor, action="device.ble_address", entity="device", entity_id=device_id,
                     at=now, before={"ble_address": row[0]}, after={"ble_address": address})
    return address


def registered(store) -> dict[str, dict]:
    """address -> device row, for the BLE devices this clinic registered with an address."""
    rows = store.query("SELECT id, kind, name, resident_id, ble_address FROM devices"
                       " WHERE transport = 'ble' AND removed_at IS NULL AND ble_address IS NOT NULL")
    return {r["ble_address"]: r for r in rows}


def unaddressed(store) -> list[str]:
    return [r["id"] for r in store.query("SELECT id FROM devices WHERE transport = 'ble' AND removed_at IS NULL"
                                         " AND ble_address IS NULL ORDER BY id")]


def last_sequence(store, device_id: str) -> int | None:
    return store.scalar("SELECT last_sequence FROM ble_state WHERE device_id = ?", (device_id,))


def store_readings(store, readings: Iterable[Reading], *, device_id: str, sequence: int | None = None,
                   clock=None, now: datetime) -> list[Outcome]:
    """ingest() the readings and, in the same transaction, advance the device's last sequence."""
    readings = list(readings)
    with store.atomic() as conn:
        outcomes = ingest(store, readings, clock=clock)
        if sequence is not None:
            conn.execute(
                "INSERT INTO ble_state (device_id, last_sequence, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(device_id) DO UPDATE SET last_sequence = max(coalesce(last_sequence, -1),"
                " excluded.last_sequence), updated_at = excluded.updated_at",
                (device_id, sequence, utc_iso(now)))
    return outcomes


def note_session(store, device_id: str, summary: dict, *, now: datetime) -> None:
    """The last session's summary (for `device list` / status); not clinical data."""
    with store.atomic() as conn:
        conn.execute(
            "INSERT INTO ble_state (device_id, last_connected_at, last_session, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(device_id) DO UPDATE SET last_connected_at = excluded.last_connected_at,"
            " last_session = excluded.last_session, updated_at = excluded.updated_at",
            (device_id, utc_iso(now), json.dumps(summary, ensure_ascii=False, default=str), utc_iso(now)))
        conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (utc_iso(now), device_id))


def check_new(store, address: str | None, transport: str) -> str | None:
    """Validate `--address` before anything is registered (so a bad address changes nothing)."""
    if address is None:
        return None
    if transport != "ble":
        raise ValidationError("--address is for Bluetooth devices: add --transport ble", field="address")
    address = check_address(address)
    owner = store.scalar("SELECT id FROM devices WHERE ble_address = ? AND removed_at IS NULL", (address,))
    if owner:
        raise ValidationError(f"address {address} already belongs to device {owner}", field="address")
    return address


def reset_sequence(store, device_id: str, *, now: datetime) -> None:
    """Forget the download progress of a meter whose sequence numbers restarted (memory reset or
    counter wrap): the next request asks for every record; stable ids drop those already stored."""
    with store.atomic() as conn:
        conn.execute("UPDATE ble_state SET last_sequence = NULL, updated_at = ? WHERE device_id = ?",
                     (utc_iso(now), device_id))


def annotate(store, rows: list[dict]) -> None:
    """Add `ble_address` and `ble_last_session` to `device list` rows of Bluetooth devices."""
    extra = {r["id"]: r for r in store.query(
        "SELECT d.id, d.ble_address, s.last_session, s.last_sequence FROM devices d"
        " LEFT JOIN ble_state s ON s.device_id = d.id WHERE d.transport = 'ble'")}
    for row in rows:
        e = extra.get(row["id"])
        if e is None:
            continue
        row["ble_address"] = e["ble_address"]
        row["ble_last_sequence"] = e["last_sequence"]
        row["ble_last_session"] = json.loads(e["last_session"]) if e["last_session"] else None
