"""The box's health in a few numbers, sent to the hub with each sync (issue 8) and shown on the
hub's node dashboard: disk, temperature, uptime, version, devices, backlog, last update."""
from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from . import outbox, release
from .reading import parse_iso

STALE_DEVICE = timedelta(days=7)


def report(node, *, now: datetime | None = None, sys_root: Path = Path("/")) -> dict:
    now = now or node.clock.now()
    st = os.statvfs(node.data_dir)
    return {
        "disk_free_pct": round(100 * st.f_bavail / max(st.f_blocks, 1), 1),
        "disk_free_mb": st.f_bavail * st.f_frsize // 1_000_000,
        "temperature_c": _temperature(sys_root),
        "uptime_s": _uptime(sys_root),
        "version": release.running_version(),
        "devices": _devices(node, now),
        "backlog": outbox.backlog(node.store.conn),
        "update": (node.read_status("update") or {}).get("result"),
        "last_update": last_update(node.read_status("update")),
    }


def last_update(status: dict | None) -> dict | None:
    """The last update's outcome for the hub (issue 18): result, versions, when, and for a failed
    one why (which check, its output, how long it waited), cut to a size the hello carries."""
    if not status:
        return None
    reason = status.get("reason") or {}
    out = {k: status.get(k) for k in ("result", "from", "to", "at")}
    if reason:
        out["reason"] = {"check": str(reason.get("check", ""))[:200], "failed": str(reason.get("failed", ""))[:64],
                         "output": str(reason.get("output", ""))[:1000], "waited_s": reason.get("waited_s")}
    if status.get("result") == "rolled back":
        out["old_version_healthy"] = bool(status.get("old_version_healthy"))
    return out


def _temperature(sys_root: Path) -> float | None:
    for zone in sorted((sys_root / "sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            return round(int(zone.read_text().strip()) / 1000, 1)
        except (OSError, ValueError):
            continue
    return None


def _uptime(sys_root: Path) -> int | None:
    try:
        return int(float((sys_root / "proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return None


def _devices(node, now: datetime) -> dict:
    rows = node.store.query("SELECT id, last_reading_at, last_error FROM devices WHERE removed_at IS NULL")
    stale = [r["id"] for r in rows
             if not r["last_reading_at"] or now - parse_iso(r["last_reading_at"]) > STALE_DEVICE]
    return {"registered": len(rows), "silent_7d": stale[:20], "with_errors": sum(1 for r in rows if r["last_error"])}
