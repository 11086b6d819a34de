"""What the client remembers between runs: its identity, small settings that adapt (batch size,
chunk size, cursor, clock offset), and the byte meter per day and record type."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.core import durable
from edge.core.reading import utc_iso
from edge.core.node import Node

from sync import signing

from . import status
from .errors import NotEnrolled

KEY_FILE = ("secrets", "sync-node.key")


@dataclass(frozen=True)
class Identity:
    node: str
    hub_url: str
    hub_pubkey: str
    key: Any


def key_path(node: Node) -> Path:
    return node.data_dir.joinpath(*KEY_FILE)


def identity(node: Node) -> Identity:
    row = node.store.one("SELECT node, hub_url, hub_pubkey FROM sync_enrollment WHERE id = 1")
    path = key_path(node)
    if row is None or not path.exists():
        raise NotEnrolled("this node is not enrolled at a hub yet: run "
                          "`clinic-edge enroll --hub URL --code CODE` with the code from county IT")
    url = node.config["sync"]["hub_url"] or row["hub_url"]
    return Identity(row["node"], url, row["hub_pubkey"], signing.load_key(path))


def new_node_key(node: Node, suite: str = signing.DEFAULT_SUITE):
    """A fresh key in `suite` (the one the enrollment code is for), readable only by the service
    user (mode 0600)."""
    key = signing.new_key(suite)
    path = key_path(node)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    signing.save_key(key, path.with_name(path.name + ".new"))
    return key


def discard_new_key(node: Node) -> None:
    path = key_path(node)
    path.with_name(path.name + ".new").unlink(missing_ok=True)


def commit_enrollment(node: Node, *, name: str, hub_url: str, hub_pubkey: str, now: datetime) -> None:
    from edge.core import audit

    path = key_path(node)
    path.with_name(path.name + ".new").replace(path)
    durable.fsync_dir(path.parent)   # the key under its final name survives a power cut
    with node.store.atomic() as conn:
        conn.execute("INSERT OR REPLACE INTO sync_enrollment (id, node, hub_url, hub_pubkey, enrolled_at)"
                     " VALUES (1, ?, ?, ?, ?)", (name, hub_url, hub_pubkey, utc_iso(now)))
        audit.append(conn, actor="cli", action="sync.enroll", entity="node", entity_id=name, at=now,
                     after={"hub_url": hub_url, "hub_pubkey": hub_pubkey})


get = status.setting   # a value kept in node_state under `sync.<key>` (one definition, in status.py)


def put(conn, key: str, value: Any, now: datetime) -> None:
    conn.execute("INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                 " SET value = excluded.value, updated_at = excluded.updated_at",
                 ("sync." + key, json.dumps(value), utc_iso(now)))


def put_many(store, values: dict[str, Any], now: datetime) -> None:
    with store.atomic() as conn:
        for k, v in values.items():
            put(conn, k, v, now)


def meter(store, day: str, kinds: dict[str, int], nbytes: int) -> None:
    """Charge nbytes to today's budget, split over record types by their share of the records."""
    total = sum(kinds.values()) or 1
    with store.atomic() as conn:
        left = nbytes
        items = list(kinds.items()) or [("_control", 0)]
        for i, (kind, count) in enumerate(items):
            share = left if i == len(items) - 1 else nbytes * count // total
            left -= share
            conn.execute("INSERT INTO sync_usage (day, kind, bytes, records) VALUES (?, ?, ?, 0)"
                         " ON CONFLICT(day, kind) DO UPDATE SET bytes = bytes + excluded.bytes",
                         (day, kind, share))


def count_records(store, day: str, kinds: dict[str, int]) -> None:
    with store.atomic() as conn:
        for kind, count in kinds.items():
            conn.execute("INSERT INTO sync_usage (day, kind, bytes, records) VALUES (?, ?, 0, ?)"
                         " ON CONFLICT(day, kind) DO UPDATE SET records = records + excluded.records",
                         (day, kind, count))


def bytes_today(store, day: str, *, only: str | None = None, without: str | None = None) -> int:
    """Bytes metered on `day`: all kinds, `only` one kind, or all `without` one kind."""
    sql, args = "SELECT coalesce(sum(bytes), 0) FROM sync_usage WHERE day = ?", [day]
    if only is not None:
        sql, args = sql + " AND kind = ?", args + [only]
    if without is not None:
        sql, args = sql + " AND kind != ?", args + [without]
    return int(store.scalar(sql, args) or 0)
