"""How much a cycle sends at once over the link as it behaves (issue 17.4): the size of an upload
chunk and of a batch.

A chunk the link cuts is sent again, so on a link whose connections last `life` seconds about
half a chunk's time is lost at every cut, and every chunk costs its request's headers and
signature (`REQUEST_BYTES`, `h` seconds at the measured rate). A chunk that crosses in
sqrt(2 h life) seconds loses least (the two costs are equal there): about 0.8 s on a link cut
every 5 s, 2 s every 30 s. Until a cut is seen a chunk may take CHUNK_SECONDS.

A cut does not shrink the batch: a batch's chunks resume at the hub's offset, so a batch needs no
connection that outlives it, and each batch costs a receipt and a header. A timeout (a link that
stalls) and a 413 do halve it; a batch that went through doubles it, up to `batch_max_records`.
"""
from __future__ import annotations

import math
from typing import Callable

MIN_CHUNK, MAX_CHUNK = 512, 1 << 20
CHUNK_SECONDS = 2.5      # the longest a chunk should take to cross the link
MIN_CHUNK_SECONDS = 0.5
REQUEST_BYTES = 600      # one chunk's request line, headers, signature and answer, both ways


class Pace:
    def __init__(self, chunk: int, batch_records: int, *, max_records: int, monotonic: Callable[[], float]):
        self.chunk, self.batch_records, self.max_records = chunk, batch_records, max_records
        self.monotonic = monotonic
        self.rate: float | None = None     # bytes per second the link carried a chunk at, last measured
        self.life: float | None = None     # seconds between the link's cuts (a running mean), once seen
        self.since = monotonic()

    def chunk_seconds(self) -> float:
        if self.life is None or not self.rate:
            return CHUNK_SECONDS
        h = REQUEST_BYTES / self.rate
        return max(MIN_CHUNK_SECONDS, min(CHUNK_SECONDS, math.sqrt(2 * h * self.life)))

    def _target(self) -> int:
        return MAX_CHUNK if not self.rate else max(MIN_CHUNK, int(self.rate * self.chunk_seconds()))

    def carried(self, sent: int, seconds: float) -> None:
        """A chunk of `sent` bytes went through in `seconds` (request to answer)."""
        if seconds > 0:
            self.rate = sent / seconds
        if sent >= self.chunk // 2:
            self.chunk = max(MIN_CHUNK, min(MAX_CHUNK, self.chunk * 2, self._target()))

    def broke(self, *, timed_out: bool) -> None:
        """A request failed on the link (not an answer of the hub's)."""
        now = self.monotonic()
        lived, self.since = now - self.since, now
        self.life = lived if self.life is None else (self.life + lived) / 2
        if timed_out or not self.rate:
            self.chunk = max(MIN_CHUNK, self.chunk // 2)
        else:
            self.chunk = max(MIN_CHUNK, min(self.chunk, self._target()))
        if timed_out:
            self.batch_records = max(1, self.batch_records // 2)

    def refused_as_too_large(self, records: int) -> None:
        self.batch_records = max(1, min(self.batch_records, records) // 2)
        self.chunk = max(MIN_CHUNK, self.chunk // 2)

    def batch_done(self) -> None:
        self.batch_records = min(self.max_records, self.batch_records * 2)
