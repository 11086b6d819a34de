"""Each worker process's admission figures in the hub database (revision 0002t; docs/hub.md,
"Admission control"), so county IT sees the whole hub turning clinics away, not only the worker
that answered: the dashboard, `clinic-edge hub admission` and /healthz read them from here.

A worker writes its row (uploads served and turned away in the last minute, in service, its
limit, its host and pid, when) from a thread of its own, never from a request: at most every
`EVERY` seconds when the figures changed, and every `ALIVE` seconds anyway while it has a row, so a
worker whose figures stay the same is still seen. A worker not heard of for `SEEN` is left out of
what is shown (it stopped, or cannot reach the database); rows older than a day are deleted.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa

from .storage import HubStore, meta, now_iso

log = logging.getLogger(__name__)

EVERY = 10.0                      # s: at most one write this often when the figures changed
ALIVE = 60.0                      # s: and one this often while unchanged
SEEN = timedelta(minutes=2)       # a worker heard of within this is shown
KEEP = timedelta(days=1)          # a worker's row is deleted after this without a write
FIGURES = ("served_last_minute", "shed_last_minute", "uploads_in_service", "limit")

workers = sa.Table(
    "hub_admission_workers", meta,
    sa.Column("worker", sa.String(160), primary_key=True),          # host:pid
    sa.Column("host", sa.String(128), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("served_last_minute", sa.Integer, nullable=False),
    sa.Column("shed_last_minute", sa.Integer, nullable=False),
    sa.Column("in_service", sa.Integer, nullable=False),
    sa.Column("in_service_limit", sa.Integer, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
)


class Reporter:
    """Writes one worker's figures (`figures()`: Admission.health) to the database; `changed()` is
    what the worker calls after each upload it answered (it only wakes the thread)."""

    def __init__(self, store: HubStore, figures: Callable[[], dict[str, Any]], *,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic):
        self.store, self.figures, self.now, self.monotonic = store, figures, now, monotonic
        self.host, self.pid = socket.gethostname()[:128], os.getpid()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()
        self.written: tuple | None = None
        self.written_at = -1e18
        self.failures = 0

    def changed(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            with self.start_lock:      # started by the first upload: a worker that serves none writes nothing
                if self.thread is None or not self.thread.is_alive():
                    self.pid = os.getpid()       # the worker process, not a parent it was forked from
                    self.thread = threading.Thread(target=self._run, name="admission-figures", daemon=True)
                    self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            # while the last minute's figures are not zero they fall back as the minute passes: look again soon
            self.wake.wait(EVERY if self.written and any(self.written[:2]) else ALIVE)
            self.wake.clear()
            wait = self.written_at + EVERY - self.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self.write_if_due()
            except Exception:  # noqa: BLE001 - the database away: counted, logged, tried again later
                self.failures += 1
                log.exception("could not write this worker's admission figures (%d failures)", self.failures)

    def write_if_due(self) -> bool:
        """Write the figures if they changed since the last write or ALIVE has passed; True if written."""
        h = self.figures()
        now_m = self.monotonic()
        figures = tuple(h[k] for k in FIGURES)
        if figures == self.written and now_m - self.written_at < ALIVE:
            return False
        now = self.now()
        row = {"worker": f"{self.host}:{self.pid}", "host": self.host, "pid": self.pid,
               "served_last_minute": h["served_last_minute"], "shed_last_minute": h["shed_last_minute"],
               "in_service": h["uploads_in_service"], "in_service_limit": h["limit"], "at": now_iso(now)}
        upsert = self.store._insert(workers).values(**row)
        upsert = upsert.on_conflict_do_update(index_elements=["worker"],
                                              set_={k: v for k, v in row.items() if k != "worker"})
        with self.store.begin() as c:
            c.execute(upsert)
            c.execute(workers.delete().where(workers.c.at < now_iso(now - KEEP)))
        self.written, self.written_at = figures, now_m
        return True


def recent(store: HubStore, now: datetime) -> dict[str, Any]:
    """Every worker heard of within SEEN, and their totals: {"workers": [...], "served", "shed"}."""
    with store.read() as c:
        rows = c.execute(sa.select(workers).where(workers.c.at >= now_iso(now - SEEN))
                         .order_by(workers.c.host, workers.c.pid)).mappings().all()
    shown = [{"worker": r["worker"], "host": r["host"], "pid": r["pid"], "served": r["served_last_minute"],
              "shed": r["shed_last_minute"], "in_service": r["in_service"], "limit": r["in_service_limit"],
              "at": r["at"]} for r in rows]
    return {"workers": shown, "served": sum(w["served"] for w in shown), "shed": sum(w["shed"] for w in shown)}


def busy_line(shed: int) -> str:
    """The plain-language line for county IT, Chinese first (the hub's pages are bilingual)."""
    return (f"县平台繁忙：最近一分钟有 {shed} 次上传被要求稍后再试 "
            f"(hub busy: {shed} uploads in the last minute were asked to try again later)")
