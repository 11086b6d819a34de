"""Reconnect delays: capped exponential backoff with full jitter, as a pure function."""
from __future__ import annotations

import random


def delay(attempt: int, *, base: float = 0.5, cap: float = 60.0, rand=random.random) -> float:
    """Seconds to wait before reconnect attempt `attempt` (0-based): uniform in [0, min(cap, base*2^n)].

    Full jitter spreads hundreds of clients that lost the same broker or hub at the same moment.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return ceiling * rand()


# A hub (or platform) that says "later" is believed at most this long: one that sends a year, by
# mistake or on purpose, must not silence a node ([sync] retry_after_cap_seconds, docs/hub.md).
RETRY_AFTER_CAP = 900.0
RETRY_AFTER_FLOOR = 1.0     # "0" or a date already past: not a reason to hammer the server


def retry_after(value: str | None, *, now: float, date: str | None = None, cap: float = RETRY_AFTER_CAP
                ) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3): delta-seconds (`120`) or an
    HTTP-date (`Fri, 04 Dec 2026 20:30:00 GMT`, also the obsolete RFC 850 and asctime forms),
    measured against the answer's own Date header when it has a valid one (so a node whose clock
    is off still waits what the server meant), else against `now` (epoch s). Clamped to
    [RETRY_AFTER_FLOOR, cap]; None when the header is absent or not one of those forms (the
    caller then treats the answer as an ordinary failure)."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    if value.isascii() and value.isdigit():
        seconds = float(int(value[:12]))       # 12 digits are already far past any cap
    else:
        when = http_date(value)
        if when is None:
            return None
        base = http_date(date) if date else None
        seconds = when - (base if base is not None else now)
    return min(cap, max(RETRY_AFTER_FLOOR, seconds))


def http_date(text: str) -> float | None:
    """An HTTP-date (RFC 9110 §5.6.7) as epoch seconds, or None."""
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    text = text.strip()
    for form in ("%A, %d-%b-%y %H:%M:%S GMT",):          # RFC 850, which email.utils does not read
        try:
            return datetime.strptime(text, form).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    try:
        when = parsedate_to_datetime(text)             # IMF-fixdate and asctime
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
