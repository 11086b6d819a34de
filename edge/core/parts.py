"""The parts installed on this node, found through entry points in the package metadata.

Packages above edge.core (sync.client, device_drivers) contribute migrations
(`clinic_edge.migrations`) and status (`clinic_edge.status`) the way they contribute subcommands
(`clinic_edge.commands`, edge/cli.py): core reads the groups with importlib.metadata and never
imports those packages by name (docs/architecture.md). A part whose package is not installed on
this node (a box built without Bluetooth) is skipped with a warning; any other import error is
the part's own bug and is raised.
"""
from __future__ import annotations

import functools
import logging
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

MIGRATIONS = "clinic_edge.migrations"
STATUS = "clinic_edge.status"


@functools.cache   # the installed parts do not change while a process runs (a web request asks each time)
def load(group: str) -> tuple[tuple[str, Any], ...]:
    """(name, loaded object) of every entry point in `group`, by name; absent packages left out."""
    found = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            found.append((ep.name, ep.load()))
        except ModuleNotFoundError as e:
            if not _is_the_part(e.name, ep.module):
                raise
            log.warning("%s %r skipped: %s is not installed on this node", group, ep.name, e.name)
    return tuple(found)


def _is_the_part(missing: str | None, module: str) -> bool:
    """The missing module is the entry point's own module or a package it lives in."""
    return bool(missing) and (module == missing or module.startswith(missing + "."))
