"""Helpers for the serial tests: a pseudo-terminal that can be unplugged and plugged back in.

The node opens a stable path (a symlink, like udev's /dev/serial/by-id/...) that points at the
slave side of a real pty; the simulated device holds the master. Unplugging closes the master
and removes the link; plugging in makes a new pty and points the link at it.
"""
from __future__ import annotations

import os
import pty
import tty
from pathlib import Path


class PlugPort:
    def __init__(self, path: Path):
        self.path = path
        self.master: int | None = None

    def plug(self) -> int:
        master, slave = pty.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        name = os.ttyname(slave)
        os.close(slave)
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        tmp.replace(self.path)
        self.master = master
        return master

    def unplug(self) -> None:
        self.path.unlink(missing_ok=True)
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def close(self) -> None:
        self.unplug()


class FakeMonotonic:
    """An injected clock for protocol timers: real time plus whatever the test adds."""

    def __init__(self):
        import time

        self._time = time.monotonic
        self.offset = 0.0

    def __call__(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
