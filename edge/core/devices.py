"""The device registry: which devices belong to this clinic, their secrets and bindings.

Each MQTT device gets its own broker account whose username is the device id; its password is
shown once and only a PBKDF2-SHA512 hash (mosquitto's `$7$` format) is kept, so the broker's
password file can be regenerated from the store at any time.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime
from typing import Any

from . import audit
from .errors import NotFound, ValidationError
from .reading import utc_iso

KINDS = ("bp", "glucose", "spo2", "scale", "thermometer", "wearable", "analyser", "monitor", "other")
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PBKDF2_ITERATIONS = 1000


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The `$7$` (PBKDF2-SHA512) form mosquitto 2 reads from its password file."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID.fullmatch(device_id or ""):
        raise ValidationError(f"device id {device_id!r} is not allowed: use 1-64 letters, digits, '.', '_' "
                              "or '-', starting with a letter or digit", field="id")
    return device_id


def add(store, device_id: str, *, kind: str, transport: str = "mqtt", name: str = "",
        resident_id: str | None = None, now: datetime, actor: str = "system") -> str | None:
    """Register a device. Returns its new MQTT password (shown once) for MQTT devices."""
    check_device_id(device_id)
    if kind not in KINDS:
        raise ValidationError(f"device kind {kind!r} is not known; use one of {', '.join(KINDS)}", field="kind")
    password = secrets.token_urlsafe(18) if transport == "mqtt" else None
    with store.atomic() as conn:
        existing = conn.execute("SELECT removed_at FROM devices WHERE id = ?", (device_id,)).fetchone()
        if existing and existing[0] is None:
            raise ValidationError(f"device {device_id} is already registered", field="id")
        row = {"id": device_id, "kind": kind, "transport": transport, "name": name,
               "secret_hash": mosquitto_hash(password) if password else None,
               "resident_id": resident_id, "created_at": utc_iso(now)}
        if existing:  # re-adding a removed device keeps its readings linked to the same id
            conn.execute("UPDATE devices SET kind=?, transport=?, name=?, secret_hash=?, resident_id=?,"
                         " removed_at=NULL WHERE id=?",
                         (kind, transport, name, row["secret_hash"], resident_id, device_id))
        else:
            conn.execute("INSERT INTO devices (id, kind, transport, name, secret_hash, resident_id, created_at)"
                         " VALUES (:id,:kind,:transport,:name,:secret_hash,:resident_id,:created_at)", row)
        audit.append(conn, actor=actor, action="device.add", entity="device", entity_id=device_id, at=now,
                     after={k: v for k, v in row.items() if k != "secret_hash"})
    return password


def remove(store, device_id: str, *, now: datetime, actor: str = "system") -> None:
    with store.atomic() as conn:
        cur = conn.execute("UPDATE devices SET removed_at = ?, secret_hash = NULL WHERE id = ? AND removed_at IS NULL",
                           (utc_iso(now), device_id))
        if cur.rowcount == 0:
            raise NotFound(f"device {device_id} is not registered")
        audit.append(conn, actor=actor, action="device.remove", entity="device", entity_id=device_id, at=now)


def bind(store, device_id: str, resident_id: str | None, *, now: datetime, actor: str = "system") -> None:
    """Bind a personal device (wearable) to a resident, or unbind it with None."""
    with store.atomic() as conn:
        before = conn.execute("SELECT resident_id FROM devices WHERE id = ? AND removed_at IS NULL",
                              (device_id,)).fetchone()
        if before is None:
            raise NotFound(f"device {device_id} is not registered")
        conn.execute("UPDATE devices SET resident_id = ? WHERE id = ?", (resident_id, device_id))
        audit.append(conn, actor=actor, action="device.bind", entity="device", entity_id=device_id, at=now,
                     before={"resident_id": before[0]}, after={"resident_id": resident_id})


def active(store) -> list[dict[str, Any]]:
    return store.query("SELECT id, kind, transport, name, resident_id, created_at, last_seen, last_reading_at,"
                       " last_error, last_error_at, error_count, secret_hash FROM devices"
                       " WHERE removed_at IS NULL ORDER BY id")


def get(store, device_id: str, *, removed: bool = False) -> dict[str, Any] | None:
    """A registered device's row; with removed=True also a removed one (`removed_at` set)."""
    return store.one("SELECT * FROM devices WHERE id = ?" + ("" if removed else " AND removed_at IS NULL"),
                     (device_id,))


def seen(store, device_id: str, *, now: datetime) -> None:
    """The device was heard from (a connection that brought no reading counts too); not clinical data."""
    with store.atomic() as conn:
        conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (utc_iso(now), device_id))


def record_error(store, device_id: str, reason: str, *, now: datetime) -> None:
    """Remember a device's last bad message for county IT (`device list`); not clinical data."""
    with store.atomic() as conn:
        conn.execute("UPDATE devices SET last_error = ?, last_error_at = ?, error_count = error_count + 1,"
                     " last_seen = ? WHERE id = ?", (reason[:500], utc_iso(now), utc_iso(now), device_id))
