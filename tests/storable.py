"""What the parser property tests check of every reading a parser accepted: it goes through the
real ingest() into a real SQLite store on a temp file, nothing non-finite is stored, a valid value
is in its code's possible range, and what `clinic-edge readings --json` prints (latest()) is
valid JSON (json.dumps(allow_nan=False)).

One store serves a whole test session (a migrated store per hypothesis example would be slow).
"""
from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from pathlib import Path

from edge.core import codes, devices
from edge.core.clock import SystemClock
from edge.core.ingest import STATUS_REFUSED, ingest, latest
from edge.core.store import Store

_state: dict = {}


def shared_store() -> Store:
    if "store" not in _state:
        folder = tempfile.mkdtemp(prefix="parser-properties-")
        atexit.register(shutil.rmtree, folder, True)
        _state["store"], _state["devices"] = Store(Path(folder) / "node.db"), set()
    return _state["store"]


def assert_storable(readings: list) -> list[dict]:
    """ingest() the readings; returns their stored rows after checking them."""
    if not readings:
        return []
    store = shared_store()
    for device_id in {r.device_id for r in readings} - _state["devices"]:
        devices.add(store, device_id, kind="other", transport=readings[0].transport, now=SystemClock().now())
        _state["devices"].add(device_id)
    outcomes = ingest(store, readings)
    assert not [o.reason for o in outcomes if o.status == STATUS_REFUSED]
    ids = [o.id for o in outcomes]
    stored = store.query(f"SELECT * FROM readings WHERE id IN ({', '.join('?' * len(ids))})", ids)
    assert {r["id"] for r in stored} == set(ids)
    for row in stored:
        json.dumps(row, allow_nan=False)
        json.loads(row["meta"])
        for key in ("value", "value_as_sent"):
            assert row[key] is None or math.isfinite(row[key]), (key, row)
        if row["status"] == "valid":
            code = codes.lookup(row["code"])
            assert row["value"] is not None and code.low <= row["value"] <= code.high, row
    json.dumps(latest(store, limit=20), allow_nan=False)
    return stored
