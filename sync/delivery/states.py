"""A delivery's states and what one attempt moves it to (docs/interop.md §5): pure, no storage.

pending -> delivered (2xx, or the file is in place) | refused (the platform's 4xx, or a record
that cannot be a standard document; never retried for that version) | retrying (5xx, 408, 425,
429, the link or the drop directory, a resident not stored yet; due again after a capped
exponential backoff with full jitter). The hub keeps the outcome in hub_deliveries, a node in
direct_deliveries; both store the values `after` returns.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from edge.core import backoff
from sync.standards import ResidentMissing, StandardsError

from .transport import Outcome

STATES = ("pending", "retrying", "delivered", "refused")
DUE = ("pending", "retrying")
RETRY_BASE_S, RETRY_CAP_S = 30.0, 6 * 3600.0
_FROM_OUTCOME = {"delivered": "delivered", "refused": "refused", "retry": "retrying"}
MALFORMED = (KeyError, TypeError, ValueError, AttributeError)   # a payload that lacks what its kind has


def of_outcome(out: Outcome) -> tuple[str, str | None]:
    """(state, reason) after a send."""
    return _FROM_OUTCOME[out.state], out.reason


def of_build_error(e: Exception) -> tuple[str, str]:
    """(state, reason) for a record that did not become a document: a StandardsError, or one of
    MALFORMED. A follow-up whose resident is not stored yet waits (retrying); the rest are refused."""
    if isinstance(e, ResidentMissing):
        return "retrying", f"not a standard document: {e}"
    if isinstance(e, StandardsError):
        return "refused", f"not a standard document: {e}"
    return "refused", f"malformed record: {e.__class__.__name__}: {e}"


def after(attempts: int, state: str, reason: str | None, doc_id: str | None, *, now: datetime,
          rand: Callable[[], float], iso: Callable[[datetime], str]) -> dict[str, Any]:
    """The columns to store after attempt number `attempts + 1` ended in `state`; `iso` writes a
    time as the store keeps it."""
    if state not in STATES:
        raise ValueError(f"unknown delivery state {state!r}")
    values: dict[str, Any] = {"state": state, "reason": reason, "updated_at": iso(now), "attempts": attempts + 1}
    if doc_id:
        values["doc_id"] = doc_id
    if state == "delivered":
        values["delivered_at"] = iso(now)
    if state == "retrying":
        wait = backoff.delay(attempts, base=RETRY_BASE_S, cap=RETRY_CAP_S, rand=rand)
        values["next_at"] = iso(now + timedelta(seconds=max(wait, 1.0)))
    return values
