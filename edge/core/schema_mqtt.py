"""MQTT ingest tables (migration 351): how the latest message under each MQTT packet id was
delivered, so a redelivery of a message already committed (the broker resends what ingest had not
acknowledged, with the same packet id and DUP set) is recognised and stored once (docs/mqtt.md)."""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements


@migration(351, "mqtt: the delivery behind each packet id")
def mqtt_deliveries(db: sqlite_utils.Database) -> None:
    run_statements(db, """CREATE TABLE mqtt_deliveries (
        mid INTEGER PRIMARY KEY CHECK (mid BETWEEN 1 AND 65535),
        digest TEXT NOT NULL,
        delivery TEXT NOT NULL,
        at TEXT NOT NULL
    )""")
