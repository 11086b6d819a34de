"""systemd's notify protocol (sd_notify(3)), spoken directly on $NOTIFY_SOCKET: no dependency.

A `Type=notify` unit is "started" only after READY=1, and with `WatchdogSec=` systemd kills
and restarts the service when WATCHDOG=1 stops arriving. Call `watchdog()` only after the
service checked that it is really healthy (store writable, broker connected), so a hung or
broken service is restarted instead of looking alive. Outside systemd every call is a no-op.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Mapping

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"


class Notifier:
    """One service's channel to systemd. `env` is passed in so tests need no real systemd."""

    def __init__(self, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self.address = _address(env.get(ENV_SOCKET, ""))
        self.interval = _watchdog_interval(env)
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` lines in one datagram; False when there is no systemd to tell."""
        if self.address is None:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            try:
                s.connect(self.address)
                s.sendall("\n".join(fields).encode())
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def due(self, now: float | None = None) -> bool:
        """True when a watchdog ping is wanted now (at most about three per interval)."""
        if self.address is None:
            return False
        now = time.monotonic() if now is None else now
        return self.interval is None or now - self._last_ping >= self.interval / 3

    def watchdog(self, now: float | None = None) -> bool:
        """WATCHDOG=1, rate-limited by `due()` (cheap to call from any loop)."""
        now = time.monotonic() if now is None else now
        if not self.due(now):
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")


def _address(raw: str) -> str | bytes | None:
    if not raw:
        return None
    if raw.startswith("@"):  # abstract namespace
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get(ENV_WATCHDOG_USEC, "")
    pid = env.get(ENV_WATCHDOG_PID, "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


_default: Notifier | None = None


def notifier() -> Notifier:
    """The process-wide notifier (built from the environment on first use)."""
    global _default
    if _default is None:
        _default = Notifier()
    return _default
