"""Per-request access to the node's store (one SQLite connection per worker thread)."""
from __future__ import annotations

from flask import current_app, g

from edge.core.clock import clinic_today
from edge.core.node import Node
from edge.core.store import Store


def node() -> Node:
    return current_app.extensions["node"]


def store() -> Store:
    if "store" not in g:
        g.store = Store(node().config.store_path, migrate=False, check=False)
    return g.store


def today():
    """The clinic's date (edge.core.clock.clinic_today) for this request."""
    n = node()
    return clinic_today(store(), n.clock, n.config["node"]["timezone"])


def close_store(_exc=None) -> None:
    s = g.pop("store", None)
    if s is not None:
        s.close()
