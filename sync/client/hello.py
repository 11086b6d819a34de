"""When the sync daemon says hello, and what counts as news (issue 17.4; docs/api.md, "Hello").

A hello costs about a kilobyte on a SIM card, so the daemon sends it only when the county would
see something new, and at least once an hour:
* before the uplink when this node has not said hello since it booted (the hub's answer sets the
  clock offset that corrects readings stamped before the clock was right), when the node's
  certificate needs renewing, or when the last hello is an hour old (the audit head and the
  figures that move all the time, uptime, free megabytes, temperature, go then);
* after the uplink and the pull when what the county's dashboard shows changed since the last
  hello the hub acknowledged: backlog, quarantine, conflicts, software, devices, update result,
  disk in 5 % steps, temperature in 10 degree steps.
`clinic-edge sync --once` always says hello: a person running it wants the whole report.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sync import protocol

from . import state

EVERY = timedelta(hours=1)
VOLATILE = ("last_success", "bytes_today", "clock_offset_s", "audit", "csr")
VOLATILE_HEALTH = ("uptime_s", "disk_free_mb")


def digest(brief: dict[str, Any]) -> str:
    """A hash of what the county would notice in a hello: the volatile parts left out or coarsened."""
    news = {k: v for k, v in brief.items() if k not in VOLATILE}
    health = {k: v for k, v in (news.get("health") or {}).items() if k not in VOLATILE_HEALTH}
    if isinstance(health.get("disk_free_pct"), (int, float)):
        health["disk_free_pct"] = int(health["disk_free_pct"] // 5) * 5
    if isinstance(health.get("temperature_c"), (int, float)):
        health["temperature_c"] = int(health["temperature_c"] // 10) * 10
    news["health"] = health
    return hashlib.sha256(protocol.canonical(news)).hexdigest()


def due_first(store, *, boot_id: str, now: datetime, renewing: bool) -> bool:
    """Must the cycle start with a hello (see the module doc)?"""
    at = state.get(store, "hello_at")
    if renewing or not at or state.get(store, "hello_boot") != boot_id:
        return True
    try:
        return now - datetime.fromisoformat(str(at).replace("Z", "+00:00")) >= EVERY
    except ValueError:
        return True


def changed(store, brief: dict[str, Any]) -> bool:
    return state.get(store, "hello_digest") != digest(brief)


def said(store, brief: dict[str, Any], *, boot_id: str, now: datetime) -> None:
    """The hub acknowledged this hello."""
    state.put_many(store, {"hello_digest": digest(brief), "hello_at": protocol.utc_now_iso(now),
                           "hello_boot": boot_id}, now)
