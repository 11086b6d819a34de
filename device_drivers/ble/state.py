"""What the BLE driver keeps in the store: device addresses and download progress.

Readings go through `ingest()` only. The glucose meter's last sequence number is written in the
same transaction as the readings it covers (`store_readings`), so after a crash or a dropped link
the next request ("sequence >= last + 1") starts exactly after what is committed. The SQL is in
`tables.py` (BLE's own tables) and in edge.core (the device registry, ingest, audit): this module
holds the rules (docs/architecture.md: drivers reach the store through functions).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable

from edge.core import audit, devices
from edge.core.errors import NotFound, ValidationError
from edge.core.ingest import Outcome, ingest
from edge.core.reading import Reading

from . import tables

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
        if devices.get(store, device_id) is None:
            raise NotFound(f"device {device_id} is not registered")
        before = tables.address_of(store, device_id)
        other = tables.owner_of(store, address, other_than=device_id)
        if other:
            raise ValidationError(f"address {address} already belongs to device {other}", field="address")
        tables.write_address(conn, device_id, address)
        audit.append(conn, actor=actor, action="device.ble_address", entity="device", entity_id=device_id,
                     at=now, before={"ble_address": before}, after={"ble_address": address})
    return address


def registered(store) -> dict[str, dict]:
    """address -> device row, for the BLE devices this clinic registered with an address."""
    return {r["ble_address"]: r for r in tables.ble_devices(store, addressed=True)}


def unaddressed(store) -> list[str]:
    return [r["id"] for r in tables.ble_devices(store, addressed=False)]


def last_sequence(store, device_id: str) -> int | None:
    return tables.last_sequence(store, device_id)


def store_readings(store, readings: Iterable[Reading], *, device_id: str, sequence: int | None = None,
                   clock=None, now: datetime) -> list[Outcome]:
    """ingest() the readings and, in the same transaction, advance the device's last sequence."""
    readings = list(readings)
    with store.atomic() as conn:
        outcomes = ingest(store, readings, clock=clock)
        if sequence is not None:
            tables.advance_sequence(conn, device_id, sequence, now=now)
    return outcomes


def note_session(store, device_id: str, summary: dict, *, now: datetime) -> None:
    """The last session's summary (for `device list` / status); not clinical data."""
    with store.atomic() as conn:
        tables.write_session(conn, device_id, summary, now=now)
        devices.seen(store, device_id, now=now)


def check_new(store, address: str | None, transport: str) -> str | None:
    """Validate `--address` before anything is registered (so a bad address changes nothing)."""
    if address is None:
        return None
    if transport != "ble":
        raise ValidationError("--address is for Bluetooth devices: add --transport ble", field="address")
    address = check_address(address)
    owner = tables.owner_of(store, address)
    if owner:
        raise ValidationError(f"address {address} already belongs to device {owner}", field="address")
    return address


def reset_sequence(store, device_id: str, *, now: datetime) -> None:
    """Forget the download progress of a meter whose sequence numbers restarted (memory reset or
    counter wrap): the next request asks for every record; stable ids drop those already stored."""
    with store.atomic() as conn:
        tables.forget_sequence(conn, device_id, now=now)


def annotate(store, rows: list[dict]) -> None:
    """Add `ble_address` and `ble_last_session` to `device list` rows of Bluetooth devices."""
    extra = tables.device_extras(store)
    for row in rows:
        e = extra.get(row["id"])
        if e is None:
            continue
        row["ble_address"] = e["ble_address"]
        row["ble_last_sequence"] = e["last_sequence"]
        row["ble_last_session"] = e["last_session"]
