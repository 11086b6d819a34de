"""Versioned schema migrations, applied at start, each in its own transaction.

Each schema module registers functions with `@migration(version, name)`. Core's own modules are
SCHEMA_MODULES; a package above core (sync.client, device_drivers) names its tables module under
the `clinic_edge.migrations` entry-point group in pyproject.toml (edge/core/parts.py loads it), so
each package owns its tables and core imports none of them. Versions are numbered in blocks per
owner so parts of the product can add tables side by side: 1-99 foundation, 100-199 workbench
(residents, accounts), 200-299 sync, 300-399 drivers, 400-499 appliance, 500-599 follow-up forms
and reports, 570-579 field encryption, 600-619 the elderly's health check, 620-629 the audit
chain's suite. One version registered by two modules stops the start (MigrationConflict). Applied versions are recorded in `_migrations`; a missing one is applied
in version order. Migrations add; they never DROP a table or column that holds clinical data (docs/architecture.md).
"""
from __future__ import annotations

import importlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

from . import parts
from .errors import MigrationConflict

SCHEMA_MODULES = [
    "edge.core.schema",
    "edge.core.schema_workbench",
    "edge.core.schema_followup",
    "edge.core.schema_management",
    "edge.core.schema_corrections",
    "edge.core.schema_wear",
    "edge.core.schema_healthcheck",
    "edge.core.schema_fields",
    "edge.core.schema_audit",
]

_REGISTRY: dict[int, tuple[str, Callable]] = {}


def migration(version: int, name: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        known = _REGISTRY.get(version)
        if known and _origin(known[1]) != _origin(fn):
            raise MigrationConflict(
                f"migration {version} is registered twice: {known[1].__module__} ({known[0]!r}) and "
                f"{fn.__module__} ({name!r}); each package takes its ids from its own block "
                "(docs/architecture.md): give one of them a free id and reinstall")
        _REGISTRY[version] = (name, fn)
        return fn
    return register


def _origin(fn: Callable) -> tuple[str, str]:
    return fn.__module__, fn.__qualname__


def run_statements(db, *statements: str) -> None:
    """Execute DDL one statement at a time (executescript would commit the migration's transaction)."""
    for sql in statements:
        db.execute(sql)


def registered() -> dict[int, tuple[str, Callable]]:
    """Every migration of core and of the packages installed here, by version."""
    for module in SCHEMA_MODULES:
        importlib.import_module(module)
    parts.load(parts.MIGRATIONS)   # importing the packages' tables modules registers their migrations
    return dict(sorted(_REGISTRY.items()))


def apply(store: "Store") -> list[int]:
    """Apply what is missing. Safe when several services start at once on the same file: whether
    a version is applied is read inside that version's own write transaction (BEGIN IMMEDIATE),
    so a second process waits for the first and then finds it done. Every part's migrations are
    found before anything is written, so a MigrationConflict leaves the file as it was."""
    found = registered()
    with store.atomic() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations "
                     "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    applied = []
    for version, (name, fn) in found.items():
        if _is_applied(store.conn, version):  # cheap read first: the usual start applies nothing
            continue
        with store.atomic() as conn:
            if _is_applied(conn, version):
                continue
            fn(store.db)
            conn.execute("INSERT INTO _migrations VALUES (?, ?, ?)",
                         (version, name, datetime.now(timezone.utc).isoformat()))
        applied.append(version)
    return applied


def _is_applied(conn, version: int) -> bool:
    return conn.execute("SELECT 1 FROM _migrations WHERE version = ?", (version,)).fetchone() is not None
