"""Admission control (issue 17.5): a bounded number of uploads in service per worker process.

When 300 clinics come back at once, queueing every upload behind the others makes each wait ten
seconds or more (and some hit the node's 30 s timeout, which costs the SIM card the upload again).
Instead, once `[hub] uploads_in_service` uploads are being served by this process, the next one is
answered at once with 503 and a `Retry-After` of `busy_retry_seconds` plus up to as much again of
random jitter, so the nodes that were turned away do not all come back in the same second
(docs/hub.md, "Admission control"). The answer is decided from the request line alone, before the
body is read or the signature checked: shedding must cost almost nothing.

Only uploads (`PUT /v1/uploads/...`) are shed: a hello, a pull, an upload's offset query and
/healthz are cheap and pass. Each process counts what it served and shed; /healthz shows it, and
answers 503 "ok": false while this process turned uploads away in the last minute and finished none.
"""
from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Callable

WINDOW = 60.0          # s: what /healthz's "shedding" looks back over
BUSY = "503 Service Unavailable"
BUSY_BODY = b'{"error":"hub busy: try again after Retry-After seconds"}'


def is_upload(environ: dict) -> bool:
    return environ.get("REQUEST_METHOD") == "PUT" and environ.get("PATH_INFO", "").startswith("/v1/uploads/")


class Admission:
    """WSGI middleware around the hub's app; `limit` 0 admits everything (no admission control)."""

    def __init__(self, app, *, limit: int, retry_seconds: int, rand: Callable[[], float] = random.random,
                 monotonic: Callable[[], float] = time.monotonic):
        self.app, self.limit, self.retry_seconds = app, limit, retry_seconds
        self.rand, self.monotonic = rand, monotonic
        self.lock = threading.Lock()
        self.in_service = 0
        self.served = 0
        self.shed = 0
        self.recent: deque[tuple[float, bool]] = deque()   # (when, shed?) of uploads answered in the last WINDOW s

    def __call__(self, environ, start_response):
        if not is_upload(environ):
            return self.app(environ, start_response)
        if not self._admit():
            start_response(BUSY, [("Content-Type", "application/json"), ("Content-Length", str(len(BUSY_BODY))),
                                  ("Retry-After", str(self.retry_after()))])
            return [BUSY_BODY]
        try:
            return list(self.app(environ, start_response))   # the answer is built while still counted in service
        finally:
            with self.lock:
                self.in_service -= 1
                self.served += 1
                self._note(False)

    def _admit(self) -> bool:
        with self.lock:
            if self.limit and self.in_service >= self.limit:
                self.shed += 1
                self._note(True)
                return False
            self.in_service += 1
            return True

    def _note(self, shed: bool) -> None:
        now = self.monotonic()
        self.recent.append((now, shed))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - WINDOW:
            self.recent.popleft()

    def retry_after(self) -> int:
        """Whole seconds (what delta-seconds allows): the base plus up to as much again, jittered."""
        return self.retry_seconds + int(self.rand() * (self.retry_seconds + 1))

    def health(self) -> dict:
        """This process's figures for /healthz; "shedding" is "all" when this process turned uploads
        away in the last minute and finished serving none, "some", or "no"."""
        with self.lock:
            self._forget(self.monotonic())
            shed = sum(1 for _, s in self.recent if s)
            served = len(self.recent) - shed
            return {"uploads_in_service": self.in_service, "limit": self.limit, "served_total": self.served,
                    "shed_total": self.shed, "shed_last_minute": shed, "served_last_minute": served,
                    "shedding": "all" if shed and not served else ("some" if shed else "no")}
