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
