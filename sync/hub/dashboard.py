"""The per-node view county IT watches: last contact, backlog age, records and bytes per day,
clock offset, quarantine count, software version (the last three as each node last reported)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from . import update_view
from .storage import HubStore


def _age(then: str | None, now: datetime) -> str:
    if not then:
        return "never"
    try:
        secs = (now - datetime.fromisoformat(then.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return then
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{secs / size:.1f} {unit} ago"
    return f"{max(0, secs):.0f} s ago"


def node_rows(store: HubStore, now: datetime) -> list[dict[str, Any]]:
    info = store.dashboard_rows()
    per_day: dict[str, list] = {}
    for node, day, recs, nbytes in info["per_day"]:
        per_day.setdefault(node, []).append({"day": day, "records": int(recs or 0), "bytes": int(nbytes or 0)})
    out = []
    for n in store.all_nodes():
        try:
            status = json.loads(n["status"] or "{}")
        except ValueError:
            status = {}
        oldest = status.get("oldest_pending")
        out.append({
            "name": n["name"], "enrolled": bool(n["pubkey"]), "last_contact": _age(n["last_contact"], now),
            "last_contact_at": n["last_contact"], "backlog": status.get("backlog"),
            "backlog_age": _age(oldest, now) if oldest else "-",
            "clock_offset": status.get("clock_offset_s"), "quarantined": status.get("quarantined"),
            "software": status.get("software", "?"), "records": info["totals"].get(n["name"], 0),
            "high_water": info["high_water"].get(n["name"]),
            "days": per_day.get(n["name"], [])[:7],
            "health": status.get("health") or {},  # disk, temperature, uptime, devices (issue 8)
            "last_update": update_view.shown(status.get("health")),   # and why it failed (issue 18)
        })
    return out
