"""The per-node view county IT watches: last contact, backlog age, records and bytes per day,
clock offset, quarantine count, software version, box health, audit-chain problems.

What a node reported is checked again here (sync.hub.status) and turned into display text, so a
row stored before the checks existed, or a field a node sent malformed, shows "?" for that node
and field only; the template only prints text and never compares what a node sent."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from . import status as node_status, update_view
from .storage import HubStore

log = logging.getLogger(__name__)


def _age(then: Any, now: datetime) -> str:
    if not then:
        return "never"
    try:
        secs = (now - datetime.fromisoformat(str(then).replace("Z", "+00:00"))).total_seconds()
    except (ValueError, TypeError):
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{secs / size:.1f} {unit} ago"
    return f"{max(0, secs):.0f} s ago"


def _text(v: Any, fmt: str = "{}", none: str = "-") -> str:
    v = node_status.shown(v)
    if v is None:
        return none
    if v == "?":
        return "?"
    return fmt.format(v)


def _health(h: Any) -> dict[str, Any]:
    if h == node_status.INVALID:
        return {"lines": [("?", False)]}
    if not h:
        return {}
    lines = []
    disk = node_status.shown(h.get("disk_free_pct"))
    if disk is not None:
        lines.append((f"磁盘 disk {_text(disk)}% free", isinstance(disk, (int, float)) and disk < 10))
    temp = node_status.shown(h.get("temperature_c"))
    if temp is not None:
        lines.append((f"温度 {_text(temp)} °C", isinstance(temp, (int, float)) and temp > 75))
    up = node_status.shown(h.get("uptime_s"))
    if up is not None:
        lines.append((f"运行 up {up // 3600 if isinstance(up, int) else '?'} h", False))
    dev = h.get("devices")
    if dev == node_status.INVALID:
        lines.append(("设备 devices ?", False))
    elif dev:
        silent = node_status.shown(dev.get("silent_7d"))
        text = f"设备 devices {_text(dev.get('registered'))}"
        if silent == "?" or silent:
            text += f" (7天无数据 silent: {'?' if silent == '?' else ', '.join(silent)})"
        lines.append((text, bool(silent)))
    update = node_status.shown(h.get("update"))
    if update == "rolled back":
        lines.append(("更新已回滚 update rolled back", True))
    elif update == "?":
        lines.append(("更新 update ?", False))
    return {"lines": lines}


def _row(n: dict[str, Any], info: dict[str, Any], per_day: dict[str, list], problems: dict, now: datetime) -> dict:
    status = node_status.stored(n["status"])
    oldest = status.get("oldest_pending")
    offset = node_status.shown(status.get("clock_offset_s"))
    quarantined = node_status.shown(status.get("quarantined"))
    flagged = problems.get(n["name"])
    return {
        "name": n["name"], "enrolled": bool(n["pubkey"]), "last_contact": _age(n["last_contact"], now),
        "last_contact_at": n["last_contact"] or "", "backlog": _text(status.get("backlog")),
        "backlog_age": _age(oldest, now) if oldest else "-",
        "clock_offset": offset if isinstance(offset, (int, float)) else None,
        "clock_offset_text": _text(offset, "{:+.1f} s"),
        "quarantined": quarantined if isinstance(quarantined, int) else None,
        "quarantined_text": _text(quarantined), "quarantined_bad": bool(quarantined),
        "software": _text(status.get("software"), none="?"), "records": info["totals"].get(n["name"], 0),
        "high_water": info["high_water"].get(n["name"]), "days": per_day.get(n["name"], [])[:7],
        "health": status.get("health") or {},     # as checked; `hub node list --json` prints it
        "health_lines": _health(status.get("health")).get("lines", []),
        "audit_flags": flagged[0] if flagged else 0, "audit_problem": flagged[1] if flagged else "",
        "last_update": update_view.shown(status.get("health")),   # and why it failed (issue 18)
    }


def node_rows(store: HubStore, now: datetime) -> list[dict[str, Any]]:
    info = store.dashboard_rows()
    problems = store.audit_problems()
    per_day: dict[str, list] = {}
    for node, day, recs, nbytes in info["per_day"]:
        per_day.setdefault(node, []).append({"day": day, "records": int(recs or 0), "bytes": int(nbytes or 0)})
    out = []
    for n in store.all_nodes():
        try:
            out.append(_row(n, info, per_day, problems, now))
        except Exception:  # noqa: BLE001 - one node's odd data must not hide every other node
            log.exception("dashboard: node %s has status the hub cannot show", n["name"])
            out.append({"name": n["name"], "broken": True, "enrolled": bool(n["pubkey"])})
    return out
