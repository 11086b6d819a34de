"""Which messages go into the next commit (docs/mqtt.md, "Group commit").

The writer takes the first message from the queue, then whatever is already waiting behind it, and
waits up to `[mqtt] commit_wait_ms` (from taking the first) for more only while messages arrive
closer together than that wait: then the next one is likely to come within it, and one commit for
several messages writes the B-trees' last pages once instead of once per message. A message that
came longer than the wait after the one before it (a cuff measuring once a minute, a scale at 1/s)
is committed at once: waiting would gather nothing and cost its latency. A message is
acknowledged only after its commit (driver.py), so the wait costs latency, never safety.

The queue and the clock are passed in (`source`, `clock`), so the policy is tested without time
passing.
"""
from __future__ import annotations

import math
import queue
import time
from typing import Callable

FIRST_WAIT_S = 0.2    # how long the writer blocks for a first message before it looks at the rest


class Gatherer:
    def __init__(self, source: queue.Queue, *, wait_s: float, batch_max: int,
                 clock: Callable[[], float] = time.monotonic):
        self.source, self.wait_s, self.batch_max, self.clock = source, wait_s, batch_max, clock
        self._last_arrival = -math.inf    # when the message taken last arrived (its `arrived`)

    def take(self, stopping: Callable[[], bool] = lambda: False) -> list:
        """The next commit's messages, in arrival order; [] when none came within FIRST_WAIT_S.
        Each message has `arrived`: the clock when the network thread queued it."""
        try:
            first = self.source.get(timeout=FIRST_WAIT_S)
        except queue.Empty:
            return []
        deadline = self.clock() + self.wait_s if self._dense(first) else -math.inf
        batch = [self._took(first)]
        while len(batch) < self.batch_max:
            left = deadline - self.clock()
            try:
                item = (self.source.get(timeout=left) if left > 0 and not stopping()
                        else self.source.get_nowait())
            except queue.Empty:
                break
            batch.append(self._took(item))
        return batch

    def _dense(self, first) -> bool:
        """Messages are coming closer together than the wait: worth waiting for the next."""
        return first.arrived - self._last_arrival < self.wait_s

    def _took(self, item):
        self._last_arrival = max(self._last_arrival, item.arrived)
        return item
