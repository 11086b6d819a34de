"""Admission control (issue 17.5): a bounded number of uploads in service per worker process.

When 300 clinics come back at once, queueing every upload behind the others makes each wait ten
seconds or more (and some hit the node's 30 s timeout, which costs the SIM card the upload again).
Instead, once `[hub] uploads_in_service` uploads are being served by this process, the next one is
answered at once with 503 and a `Retry-After` that gives it a later turn: the process knows how
long an upload takes it (a moving average) and so how many it serves per second, and hands out
turns one after the other at that rate, each rounded to whole seconds up or down at random (the
jitter; the node adds up to a second more), so the nodes turned away come back spread out at the
pace the hub can serve them, neither all in the same second nor so late that it sits idle (never
later than `busy_retry_max_seconds`; docs/hub.md, "Admission control"). The answer is decided once
the body has arrived (see `receive`) and before the signature is checked or anything is looked up:
shedding must cost almost nothing.

Only uploads (`PUT /v2/u/...`, and `PUT /v1/uploads/...` of nodes from before) are shed: a hello, a pull, an upload's offset query and
/healthz are cheap and pass. Each process counts what it served and shed; /healthz shows it, and
answers 503 "ok": false while this process turned uploads away in the last minute and finished none.
Each process also writes its figures to the hub database now and then (sync.hub.admission_figures),
so the dashboard shows what every worker turned away.
"""
from __future__ import annotations

import io
import math
import random
import threading
import time
from collections import deque
from typing import Callable

WINDOW = 60.0          # s: what /healthz's "shedding" looks back over
FIRST_GUESS = 0.1      # s an upload takes, until this process has measured one
WEIGHT = 0.1           # of each new upload in the moving average
BUSY = "503 Service Unavailable"
BUSY_BODY = b'{"error":"hub busy: try again after Retry-After seconds"}'


UPLOAD_PATHS = ("/v2/u/", "/v1/uploads/")     # sync/hub/node_api.py: the compact and the old upload


def is_upload(environ: dict) -> bool:
    return environ.get("REQUEST_METHOD") == "PUT" and environ.get("PATH_INFO", "").startswith(UPLOAD_PATHS)


def receive(environ: dict) -> None:
    """Read the upload's body before it is counted in service: the node sends it whole either way
    (it does not wait for a 100 Continue), and the seconds a slow SIM link takes to carry it must
    not hold one of the few places that bound the hub's CPU and database work. cheroot has already
    refused (413) a Content-Length above the largest batch (sync.hub.cli.body_limit)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return                      # the app answers a malformed request itself
    if length > 0:
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))


class Admission:
    """WSGI middleware around the hub's app; `limit` 0 admits everything (no admission control)."""

    def __init__(self, app, *, limit: int, retry_max: int, rand: Callable[[], float] = random.random,
                 monotonic: Callable[[], float] = time.monotonic):
        self.app, self.limit, self.retry_max = app, limit, retry_max
        self.rand, self.monotonic = rand, monotonic
        self.upload_seconds = FIRST_GUESS     # moving average of how long one upload is in service
        self.next_turn = 0.0                  # monotonic time of the last turn handed out
        self.lock = threading.Lock()
        self.in_service = 0
        self.served = 0
        self.shed = 0
        self.recent: deque[tuple[float, bool]] = deque()   # (when, shed?) of uploads answered in the last WINDOW s
        self.on_answer: Callable[[], None] = lambda: None   # after each upload answered (admission_figures.Reporter)

    def __call__(self, environ, start_response):
        if not is_upload(environ):
            return self.app(environ, start_response)
        receive(environ)
        wait = self._admit()
        if wait is not None:
            self.on_answer()
            start_response(BUSY, [("Content-Type", "application/json"), ("Content-Length", str(len(BUSY_BODY))),
                                  ("Retry-After", str(wait))])
            return [BUSY_BODY]
        began = self.monotonic()
        try:
            answer = self.app(environ, start_response)
            try:
                return list(answer)     # the answer is built while still counted in service
            finally:
                if hasattr(answer, "close"):
                    answer.close()
        finally:
            with self.lock:
                self.in_service -= 1
                self.served += 1
                self.upload_seconds += WEIGHT * (self.monotonic() - began - self.upload_seconds)
                self._note(False)
            self.on_answer()

    def _admit(self) -> int | None:
        """None: in service now; else the Retry-After of this upload's turn, in whole seconds."""
        with self.lock:
            if not self.limit or self.in_service < self.limit:
                self.in_service += 1
                return None
            self.shed += 1
            self._note(True)
            return self._turn()

    def _turn(self) -> int:
        now = self.monotonic()
        per_second = self.limit / max(self.upload_seconds, 0.001)
        self.next_turn = min(max(self.next_turn, now) + 1 / per_second, now + self.retry_max)
        # whole seconds, rounded up or down at random in proportion (the jitter): on average the turn itself
        return max(1, min(self.retry_max, math.floor(self.next_turn - now + self.rand())))

    def _note(self, shed: bool) -> None:
        now = self.monotonic()
        self.recent.append((now, shed))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - WINDOW:
            self.recent.popleft()

    def health(self) -> dict:
        """This process's figures for /healthz; "shedding" is "all" when this process turned uploads
        away in the last minute and finished serving none, "some", or "no"."""
        with self.lock:
            self._forget(self.monotonic())
            shed = sum(1 for _, s in self.recent if s)
            served = len(self.recent) - shed
            return {"uploads_in_service": self.in_service, "limit": self.limit,
                    "upload_seconds": round(self.upload_seconds, 3), "served_total": self.served,
                    "shed_total": self.shed, "shed_last_minute": shed, "served_last_minute": served,
                    "shedding": "all" if shed and not served else ("some" if shed else "no")}
