"""Reconnect/retry delays (MQTT, BLE, ASTM, sync): capped exponential backoff with full jitter."""
from __future__ import annotations

import pytest

from edge.core.backoff import delay


def test_ceiling_doubles_per_attempt_until_the_cap():
    ceilings = [delay(n, base=0.5, cap=30, rand=lambda: 1.0) for n in range(10)]
    assert ceilings == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_full_jitter_spreads_clients_between_zero_and_the_ceiling():
    assert delay(4, base=1, cap=60, rand=lambda: 0.0) == 0
    assert delay(4, base=1, cap=60, rand=lambda: 0.25) == 4


def test_huge_attempt_counts_do_not_overflow():
    assert delay(10_000, base=1, cap=5, rand=lambda: 1.0) == 5


def test_negative_attempt_is_a_programming_error():
    with pytest.raises(ValueError):
        delay(-1)
