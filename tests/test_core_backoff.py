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


# ---- Retry-After (RFC 9110 §10.2.3): what a hub that says "later" is believed ----------------------

def test_retry_after_in_delta_seconds_is_waited():
    from edge.core.backoff import retry_after

    assert retry_after("120", now=0) == 120


def test_retry_after_as_an_http_date_is_measured_against_the_answers_date_in_every_form():
    from edge.core.backoff import retry_after

    date = "Fri, 04 Dec 2026 20:29:00 GMT"
    assert retry_after("Fri, 04 Dec 2026 20:30:00 GMT", now=0, date=date) == 60        # IMF-fixdate
    assert retry_after("Friday, 04-Dec-26 20:30:00 GMT", now=0, date=date) == 60       # obsolete RFC 850
    assert retry_after("Fri Dec  4 20:30:00 2026", now=0, date=date) == 60             # obsolete asctime
    # no Date header: against the node's own (corrected) clock
    assert retry_after("Fri, 04 Dec 2026 20:30:00 GMT", now=1796416140.0) == 60


def test_an_absurd_retry_after_is_capped_so_a_hub_cannot_silence_a_node():
    from edge.core.backoff import RETRY_AFTER_CAP, retry_after

    assert retry_after("31536000", now=0) == RETRY_AFTER_CAP                  # a year
    assert retry_after("9" * 60, now=0) == RETRY_AFTER_CAP
    assert retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=0) == RETRY_AFTER_CAP
    assert retry_after("31536000", now=0, cap=30) == 30


def test_a_retry_after_of_zero_or_in_the_past_still_waits_a_second():
    from edge.core.backoff import RETRY_AFTER_FLOOR, retry_after

    assert retry_after("0", now=0) == RETRY_AFTER_FLOOR
    assert retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now=1e9) == RETRY_AFTER_FLOOR


@pytest.mark.parametrize("value", [None, "", "-5", "1.5", "soon", "12 seconds", "Fri, 99 Foo 2026", "x" * 100])
def test_a_retry_after_that_is_neither_form_is_not_believed(value):
    from edge.core.backoff import retry_after

    assert retry_after(value, now=0) is None
