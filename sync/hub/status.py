"""What a node reports about itself (hello), checked field by field before the hub keeps or shows it.

A node is across a trust boundary: one sending a string where a number belongs, a huge list or a
nested object must not break the dashboard for every county. Each known field is kept only with its
type and within its range; a field that is present but wrong becomes INVALID ("?" on the dashboard,
for that node and field only); unknown fields are dropped.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from sync import record_codec

from . import update_view

INVALID = {"invalid": True}       # stored in place of a field the node sent malformed


def _int(lo: int, hi: int) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(v)
        return v
    return check


def _num(lo: float, hi: float) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(v)
        return v
    return check


def _text(n: int) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, str) or len(v) > n:
            raise ValueError(v)
        return v
    return check


def _time(v: Any) -> Any:
    if not isinstance(v, str) or len(v) > 40 or not v[:4].isdigit():
        raise ValueError(v)
    return v


def _division(v: Any) -> Any:
    if not isinstance(v, str) or not (len(v) == 12 and v.isascii() and v.isdigit()):
        raise ValueError(v)
    return v


def _names(v: Any) -> Any:
    if not isinstance(v, list) or len(v) > 50 or not all(isinstance(x, str) and len(x) <= 64 for x in v):
        raise ValueError(v)
    return v


BIG = 10 ** 12
DEVICES = {"registered": _int(0, 100000), "silent_7d": _names, "with_errors": _int(0, 100000)}
HEALTH = {"disk_free_pct": _num(0, 100), "disk_free_mb": _int(0, BIG), "temperature_c": _num(-60, 200),
          "uptime_s": _int(0, BIG), "version": _text(64), "backlog": _int(0, BIG), "update": _text(32),
          "devices": None, "last_update": update_view.clean}
FIELDS = {"backlog": _int(0, BIG), "oldest_pending": _time, "quarantined": _int(0, BIG), "conflicts": _int(0, BIG),
          "clock_offset_s": _num(-1e11, 1e11), "software": _text(64), "bytes_today": _int(0, BIG),
          "last_success": _time, "health": None, "division_code": _division}


def _clean(doc: Any, fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, check in fields.items():
        if key not in doc or doc[key] is None:
            continue
        if doc[key] == INVALID:
            out[key] = INVALID
            continue
        try:
            if check is None:      # a nested table
                if not isinstance(doc[key], dict):
                    raise ValueError(key)
                out[key] = _clean(doc[key], DEVICES if key == "devices" else HEALTH)
            else:
                out[key] = check(doc[key])
        except (ValueError, TypeError):
            out[key] = INVALID
    return out


def clean(report: dict[str, Any]) -> dict[str, Any]:
    """The checked status of one hello (see the module doc)."""
    if not isinstance(report, dict) or record_codec.nesting(report) > record_codec.MAX_DEPTH:
        return {}
    return _clean(report, FIELDS)


def shown(value: Any) -> Any:
    """A stored field for the dashboard: '?' if the node sent it malformed."""
    return "?" if value == INVALID else value


def stored(text: Any) -> dict[str, Any]:
    """A node's stored status, checked again (rows kept before the checks, or edited by hand)."""
    import json

    try:
        doc = json.loads(text or "{}")
    except (ValueError, TypeError, RecursionError):
        return {}
    return clean(doc) if isinstance(doc, dict) else {}
