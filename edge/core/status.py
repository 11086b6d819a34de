"""What the packages above core contribute to the node's status: `clinic-edge doctor`'s findings
and the workbench's sync page, found through the `clinic_edge.status` entry-point group.

A contribution is a module (named in pyproject.toml) that imports only edge.core and offers

  findings(node, now) -> list[Finding]   # its lines in `clinic-edge doctor`, read-only checks
  report(node) -> dict                   # optional: the figures its page and its CLI show

The sync client's (`sync.client.status`) also offers the sync page's actions: `conflicts(store)`,
`resolve(...)` and `request_now(node)`. A package that is not installed contributes nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

from . import parts


@dataclass
class Finding:
    """One line of `clinic-edge doctor`: what was seen, and what to do when it is not ok."""
    check: str
    level: str  # ok | warning | problem
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok     ", "warning": "WARNING", "problem": "PROBLEM"}[self.level]
        return f"[{mark}] {self.check}: {self.detail}"

    def as_dict(self) -> dict:
        return asdict(self)


def contributions() -> list[tuple[str, Any]]:
    """(name, module) of every status contribution installed here, by name."""
    return list(parts.load(parts.STATUS))


def contribution(name: str) -> ModuleType | None:
    """The contribution registered under `name` (e.g. "sync"), or None when its package is absent."""
    return dict(contributions()).get(name)
