"""`clinic-edge sync`: the daemon. APScheduler decides *when*; one loop runs the cycles, so two
never overlap.

* a nightly full sync at `[sync] nightly_hour` with a random delay of up to
  `nightly_jitter_minutes` (hundreds of nodes do not hit the county at the same second);
* an attempt every `interval_seconds` while there is a backlog;
* after a cycle that ended on a broken link, another one soon: capped exponential backoff from
  `backoff_base_ms`, at most `interval_seconds`, starting again after any cycle that delivered
  something, so a link that keeps dropping is used whenever it is up (issue 17);
* after a cycle the hub ended with "busy, retry after N s" (503 + Retry-After, capped at
  `retry_after_cap_seconds`), the next one N s later: not a failure, so the backoff does not grow,
  and the backlog attempts wait for it too (docs/hub.md, "Admission control");
* "sync now": anything (the web UI's button) that creates `run/sync-now` in the data directory
  asks for a cycle within two seconds.
"""
from __future__ import annotations

import logging
import signal
import threading

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from edge.core import backoff, disk, sdnotify, watchdog
from edge.core.errors import StoreFull
from edge.core.node import Node
from .status import REQUEST_FILE

from . import state
from .controller import Cycle

log = logging.getLogger(__name__)


def run_daemon(node: Node) -> int:
    cfg = node.config["sync"]
    ident = state.identity(node)
    due = threading.Event()
    stop = threading.Event()
    request = node.data_dir.joinpath(*REQUEST_FILE)

    def backlog_tick():
        # store.scalar takes the store's lock: this runs in the scheduler's thread
        if hub_busy(node):
            return
        if node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL AND quarantined_at IS NULL"
                             ) or node.store.scalar("SELECT count(*) FROM sync_batches WHERE state = 'pending'"):
            due.set()

    def request_tick():
        # "sync now" while the hub asked for a later try: kept, and run once that time has come
        # (300 doctors pressing it would otherwise bring back the load the hub turned away)
        if request.exists() and not hub_busy(node):
            request.unlink(missing_ok=True)
            due.set()

    sched = BackgroundScheduler(timezone=node.config["node"]["timezone"])
    sched.add_job(due.set, CronTrigger(hour=cfg["nightly_hour"], minute=0, jitter=cfg["nightly_jitter_minutes"] * 60,
                                       timezone=node.config["node"]["timezone"]), id="nightly")
    sched.add_job(backlog_tick, "interval", seconds=cfg["interval_seconds"], id="backlog")
    sched.add_job(request_tick, "interval", seconds=2, id="sync-now")

    def on_signal(*_):
        stop.set()
        due.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sched.start()
    due.set()   # one cycle at start
    # systemd (Type=notify, WatchdogSec=): ready now; fed while the store is writable (issue 8)
    notify = sdnotify.notifier()
    notify.ready("sync daemon running")
    heartbeat = watchdog.Heartbeat(lambda: watchdog.store_problem(node.config.store_path), notify)
    heartbeat.start()
    log.info("sync daemon for node %s -> %s (every %s s while there is a backlog)", ident.node, ident.hub_url,
             cfg["interval_seconds"])
    broken = 0      # cycles in a row that ended on a broken link and delivered nothing
    try:
        while not stop.is_set():
            due.wait()
            if stop.is_set():
                break
            due.clear()
            result = one_cycle(node, ident, notify, stop)
            wait, broken = next_wait(result, broken, cfg)
            if wait is not None:
                retry_later(due, stop, wait)
    finally:
        notify.stopping()
        heartbeat.stop()
        sched.shutdown(wait=False)
    return 0


def next_wait(result, broken: int, cfg: dict) -> tuple[float | None, int]:
    """(seconds until the daemon's next cycle, or None for "when the schedule says"; the new count of
    broken cycles in a row) after `result` (a CycleResult, None when the disk was full)."""
    if result is None:
        return cfg["interval_seconds"], broken
    if result.link_failed:
        broken = 0 if result.acked else broken + 1
        return retry_delay(broken, cfg), broken
    if result.busy_for is not None:     # the hub's Retry-After (capped): `broken` neither grows nor resets
        return result.busy_for, broken
    return None, 0


def retry_delay(broken: int, cfg: dict) -> float:
    """Seconds before the next cycle after one that ended on a broken link (`broken` such cycles in
    a row that delivered nothing; 0 after one that delivered something)."""
    cap = min(cfg["backoff_cap_ms"] / 1000, cfg["interval_seconds"])
    return backoff.delay(broken, base=cfg["backoff_base_ms"] / 1000, cap=cap)


def hub_busy(node: Node) -> bool:
    """The hub's last answer asked for a later try that is still in the future (sync.client.controller)."""
    from .status import busy_until

    until = busy_until(node)
    return until is not None and until > node.clock.now()


def one_cycle(node: Node, ident, notify, stop: threading.Event):
    """One cycle and its status (the CycleResult); None when the data partition is full (issue 12). A full disk does
    not go away by restarting: the daemon says so (status file, STATUS=, log), keeps the watchdog
    fed (its Heartbeat sees a `watchdog.Waiting` problem) and tries again later, instead of
    crashing into a systemd restart loop."""
    try:
        result = Cycle(node, ident, sleep=lambda s: stop.wait(s), always_hello=False).run()
        node.write_status("sync", {"last_cycle": result.__dict__})
    except (StoreFull, OSError) as e:
        if not (isinstance(e, StoreFull) or disk.is_full(e)):
            raise
        waiting = watchdog.Waiting(f"waiting for disk space: sync cannot record its progress ({e})")
        watchdog.tell_waiting(notify, waiting)
        try:
            node.write_status("sync", {"waiting": str(waiting)})
        except OSError:
            pass   # the status file is on the full partition too: STATUS= and the log say it
        return None
    watchdog.tell_waiting(notify, None)
    log.info("sync cycle: ok=%s acked=%d batches=%d error=%s", result.ok, result.acked, result.batches,
             result.error)
    return result


def retry_later(due: threading.Event, stop: threading.Event, seconds: float) -> None:
    def wake():
        if not stop.wait(seconds):
            due.set()

    threading.Thread(target=wake, name="sync-retry", daemon=True).start()
