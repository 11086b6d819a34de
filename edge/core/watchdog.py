"""Feeding systemd's watchdog only while the service is really healthy.

`store_problem(path)` answers "can this node write its database right now?" with None or a
sentence; a `Heartbeat` thread asks a check function every few seconds and sends WATCHDOG=1
only when it returns None, otherwise it puts the problem into the unit's STATUS= line (seen in
`systemctl status`) and stays silent, so systemd restarts a service that is stuck or broken.
A full data partition is different: restarting does not make room, so it is a `Waiting`
problem: said in STATUS=, with the watchdog still fed while the service waits for space and
carries on by itself once there is some.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Callable

from . import disk
from .sdnotify import Notifier, notifier as default_notifier

log = logging.getLogger(__name__)
Check = Callable[[], "str | None"]


class Waiting(str):
    """A problem the service waits out by itself (no room on the data partition): systemd is
    told why, and the watchdog is still fed, so the service is not killed and restarted in a loop."""


def store_problem(path: str | Path, timeout: float = 5.0) -> str | None:
    """None when the database takes a write lock and its disk has room; `Waiting` when the disk
    is full (the lock works); else what is wrong."""
    path = Path(path)
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as e:
        return f"the database {path} is not writable: {e}"
    short = disk.shortage(path.parent)
    return Waiting(f"waiting for disk space: {short}") if short else None


def tell_waiting(notify: Notifier, problem: str | None) -> bool:
    """For a loop that feeds the watchdog itself (ingest): True when it may ping, i.e. no problem
    or only a `Waiting` one; says the reason in STATUS= (and the log) when it changes."""
    waiting = problem if isinstance(problem, Waiting) else None
    if waiting != getattr(notify, "_waiting_for", None):
        (log.warning if waiting else log.info)("%s", waiting or "disk space is back; carrying on")
        notify.status(waiting or "healthy")
        notify._waiting_for = waiting
    return problem is None or waiting is not None


def all_of(*checks: Check) -> Check:
    """The first problem any check reports, or None."""
    def check() -> str | None:
        for c in checks:
            problem = c()
            if problem:
                return problem
        return None
    return check


class Heartbeat(threading.Thread):
    """Ping the watchdog every `every` seconds while `check()` returns None."""

    def __init__(self, check: Check, notify: Notifier | None = None, every: float | None = None):
        super().__init__(name="watchdog", daemon=True)
        self.check = check
        self.notify = notify or default_notifier()
        interval = self.notify.interval
        self.every = every if every is not None else (interval / 3 if interval else 10.0)
        self.stop_event = threading.Event()
        self.last_problem: str | None = "not checked yet"

    def beat(self) -> bool:
        """One round: True when the watchdog was fed."""
        try:
            problem = self.check()
        except Exception as e:  # a crashing check is a problem, not a reason to stop checking
            problem = f"health check failed: {e}"
        if problem != self.last_problem:
            (log.warning if problem else log.info)("health: %s", problem or "ok again")
            self.notify.status(problem or "healthy")
            self.last_problem = problem
        if problem and not isinstance(problem, Waiting):
            return False
        self.notify.send("WATCHDOG=1")
        return True

    def run(self) -> None:
        self.beat()
        while not self.stop_event.wait(self.every):
            self.beat()

    def stop(self) -> None:
        self.stop_event.set()


def serve_notified(server, check: Check, notify: Notifier | None = None) -> None:
    """Run a waitress server under systemd: READY=1 once the socket listens, WATCHDOG=1 while
    `check()` finds nothing wrong, STOPPING=1 and a graceful finish of in-flight requests on
    SIGTERM. Outside systemd only the SIGTERM handling differs from `server.run()`."""
    import signal

    notify = notify or default_notifier()

    def on_term(*_):
        notify.stopping("finishing requests")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    notify.ready("serving")
    heartbeat = Heartbeat(check, notify)
    heartbeat.start()
    try:
        server.run()
    finally:
        heartbeat.stop()
