"""The hub's copy of a resident as it leaves the hub (`hub export --json`): its derived search key
follows the node's current rule (docs/residents.md, "Stored initials").

A resident's payload carries `name_initials`, the pinyin initials of its name's likeliest reading,
which the node derives from the name (edge/core/resident_search.py). Node migration 125 recomputed
them on the node with the surname table (单长乐 is "scl", not "dcl") but sent nothing up, so the
hub holds the old ones until the resident is next edited. They are recomputed here, when a record
is read, not in the stored payload: the stored bytes are what the node sent, and their digest is
how the hub tells a node's repeat of a record version from a changed one (sync/hub/service.py).
"""
from __future__ import annotations

from typing import Any

from edge.core.resident_search import initials


def as_read(kind: str, payload: Any) -> Any:
    """`payload` with a resident's `name_initials` recomputed from its name; any other record as it is."""
    if kind != "resident" or not isinstance(payload, dict) or "name_initials" not in payload:
        return payload
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        return payload
    readings = initials(name)
    return {**payload, "name_initials": readings[0] if readings else ""}
