"""What makes two MQTT messages "the same" reading (docs/mqtt.md).

A SenML record with an absolute time (`bt`/`t` >= 2**28) is identified by what it says: device,
code, time, value, unit; sending it again stores nothing new. A record without one cannot be told
apart from the same value measured again by its content, so it is identified by its *delivery*:

- every message ingest receives gets a fresh delivery id (random), and its readings' ids are
  derived from it: the same 70.0 kg weighed twice is two messages, two deliveries, two rows;
- ingest acknowledges (PUBACK) only after the commit, so the only messages the broker delivers
  again are ones ingest had not acknowledged. The broker resends them to ingest's persistent
  session with the same packet id and DUP set (MQTT 3.1.1 §4.4). The delivery id is committed
  with the readings under that packet id (table mqtt_deliveries, one row per packet id, 65,535 at
  most), so a resent message (DUP set, same packet id, same topic and payload) whose first
  delivery was committed gets the same delivery id again, hence the same reading ids, and is
  stored once; one whose first delivery never committed is simply stored now.

A device's own retransmission (it resends because it missed the broker's PUBACK) reaches ingest
as a new message; without a time in it, it is stored as a second reading. Devices should send `bt`.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from datetime import datetime
from typing import Callable

from edge.core.reading import Reading

from . import tables

MESSAGE_KEY = "msg"    # senml's marker of a key derived from the message (no absolute time)


class Deliveries:
    """The delivery id of each message, remembered per packet id (in memory and in the store)."""

    def __init__(self, store) -> None:
        self._by_mid: dict[int, tuple[str, str]] = tables.deliveries(store)

    def identify(self, *, mid: int, qos: int, dup: bool, topic: str, payload: bytes,
                 now: datetime) -> tuple[str, Callable[[sqlite3.Connection], None] | None]:
        """(delivery id, what to commit with the readings)."""
        if qos == 0 or not mid:   # never redelivered: nothing to remember
            return secrets.token_hex(8), None
        digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:32]
        known = self._by_mid.get(mid)
        if dup and known and known[0] == digest:
            delivery = known[1]
        else:
            delivery = secrets.token_hex(8)
        self._by_mid[mid] = (digest, delivery)

        def note(conn: sqlite3.Connection) -> None:
            tables.write_delivery(conn, mid, digest, delivery, now=now)
        return delivery, note


def by_delivery(readings: list[Reading], delivery: str) -> list[Reading]:
    """Readings identified by their message's content get ids derived from the delivery instead."""
    for r in readings:
        key = _parsed(r.source_key)
        if isinstance(key, list) and len(key) == 4 and key[1] == MESSAGE_KEY:
            r.source_key = json.dumps([key[0], "delivery", delivery, key[3]])
    return readings


def _parsed(key: str | None):
    try:
        return json.loads(key) if key else None
    except ValueError:
        return None
