"""The last update outcome each node reports in its hello (health.last_update, issue 18), checked
before the dashboard shows it: a node is across a trust boundary, so only known fields of the
right type and size are kept; anything else shows as "?" for that node alone.

    {"result": "rolled back", "from": "0.2.0", "to": "0.3.0", "at": "2026-...Z",
     "reason": {"check": "GET http://127.0.0.1:8080/healthz", "failed": "not ok",
                "output": "HTTP 503: {...}", "waited_s": 120.0},
     "old_version_healthy": true}
"""
from __future__ import annotations

import math
from typing import Any

RESULTS = ("ok", "rolled back", "refused")
TEXT = {"result": 32, "from": 64, "to": 64, "at": 40}
REASON_TEXT = {"check": 200, "failed": 64, "output": 1000}


def _text(v: Any, n: int) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > n:
        raise ValueError(v)
    return v


def clean(doc: Any) -> dict[str, Any]:
    """The outcome as a node sent it, checked; ValueError when it is malformed."""
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    out: dict[str, Any] = {k: _text(doc.get(k), n) for k, n in TEXT.items()}
    if out["result"] not in RESULTS:
        raise ValueError(out["result"])
    reason = doc.get("reason")
    if reason is not None:
        if not isinstance(reason, dict):
            raise ValueError("reason")
        out["reason"] = {k: _text(reason.get(k), n) for k, n in REASON_TEXT.items()}
        waited = reason.get("waited_s")
        if waited is not None and (isinstance(waited, bool) or not isinstance(waited, (int, float))
                                   or not math.isfinite(waited) or not 0 <= waited <= 1e7):
            raise ValueError("waited_s")
        out["reason"]["waited_s"] = waited
    healthy = doc.get("old_version_healthy")
    if healthy is not None and not isinstance(healthy, bool):
        raise ValueError("old_version_healthy")
    out["old_version_healthy"] = healthy
    return out


def shown(health: Any) -> dict[str, Any] | None:
    """What the dashboard prints for one node's last update (None: it reported none)."""
    doc = health.get("last_update") if isinstance(health, dict) else None
    if doc is None:
        return None
    try:
        u = clean(doc)
    except (ValueError, TypeError):
        return {"result": "?", "versions": "?", "at": "?", "why": "?", "bad": True}
    reason = u.get("reason") or {}
    why = ""
    if reason:
        why = f"{reason.get('check') or '?'}: {reason.get('failed') or '?'}"
        if reason.get("waited_s") is not None:
            why += f" after {reason['waited_s']:.0f} s"
    return {"result": u["result"], "versions": f"{u['from'] or '-'} → {u['to'] or '-'}", "at": u["at"] or "-",
            "why": why, "output": reason.get("output") or "", "bad": u["result"] != "ok",
            "old_healthy": u["old_version_healthy"]}
