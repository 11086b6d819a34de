"""MQTT ingest tables (migration 351) and the only SQL on them: how the latest message under each
MQTT packet id was delivered, so a redelivery of a message already committed (the broker resends
what ingest had not acknowledged, with the same packet id and DUP set) is recognised and stored
once (docs/mqtt.md). Registered through the `clinic_edge.migrations` entry point "mqtt"
(pyproject.toml); imports edge.core only."""
from __future__ import annotations

import sqlite3

import sqlite_utils

from edge.core.migrations import migration, run_statements
from edge.core.reading import utc_iso


@migration(351, "mqtt: the delivery behind each packet id")
def mqtt_deliveries(db: sqlite_utils.Database) -> None:
    run_statements(db, """CREATE TABLE mqtt_deliveries (
        mid INTEGER PRIMARY KEY CHECK (mid BETWEEN 1 AND 65535),
        digest TEXT NOT NULL,
        delivery TEXT NOT NULL,
        at TEXT NOT NULL
    )""")


def deliveries(store) -> dict[int, tuple[str, str]]:
    """packet id -> (digest of topic and payload, delivery id) of the latest message under it."""
    return {r["mid"]: (r["digest"], r["delivery"])
            for r in store.query("SELECT mid, digest, delivery FROM mqtt_deliveries")}


def write_delivery(conn: sqlite3.Connection, mid: int, digest: str, delivery: str, *, now) -> None:
    conn.execute("INSERT INTO mqtt_deliveries (mid, digest, delivery, at) VALUES (?, ?, ?, ?)"
                 " ON CONFLICT (mid) DO UPDATE SET digest = excluded.digest,"
                 " delivery = excluded.delivery, at = excluded.at",
                 (mid, digest, delivery, utc_iso(now)))
