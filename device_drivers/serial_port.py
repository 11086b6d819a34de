"""A serial port that may vanish (USB adapter unplugged) and come back.

Opened with pyserial's `serial_for_url`, so a device path, `rfc2217://`, `socket://`, `loop://`
or `spy://` (diagnostics) all work. `pump()` is the I/O loop the serial drivers share: read,
hand bytes to the protocol, tick its timers; when the port errors out (SerialException/OSError:
unplugged) close it and keep trying to open it again, without touching the protocol's state, so
a message in progress continues when the analyser resends its un-ACKed frame.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import serial

from .errors import DriverError

try:
    from termios import error as _TermiosError   # pyserial lets it through (tcdrain, ioctl) on a vanished tty
except ImportError:                              # not POSIX
    class _TermiosError(Exception):
        pass

PORT_ERRORS = (serial.SerialException, OSError, _TermiosError)

log = logging.getLogger(__name__)
READ_TIMEOUT = 0.02      # seconds one read waits; bounds the latency of timers and stop()
REOPEN_EVERY = 0.25      # seconds between attempts to open a vanished port


class PortGone(DriverError):
    """The port cannot be opened, or stopped working (unplugged)."""


class SerialPort:
    def __init__(self, url: str, settings: dict[str, Any] | None = None, *, opener=None):
        self.url = url
        self.settings = dict(settings or {})
        self._opener = opener or serial.serial_for_url
        self._port = None

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        try:
            self._port = self._opener(self.url, timeout=READ_TIMEOUT, write_timeout=2, **self.settings)
        except PORT_ERRORS + (ValueError,) as e:
            raise PortGone(f"cannot open {self.url}: {e}") from e

    def read(self) -> bytes:
        try:
            waiting = self._port.in_waiting
            return self._port.read(max(1, waiting))
        except PORT_ERRORS + (TypeError, AttributeError) as e:
            raise PortGone(f"{self.url} stopped working: {e}") from e

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except PORT_ERRORS + (AttributeError,) as e:
            raise PortGone(f"cannot write to {self.url}: {e}") from e

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except PORT_ERRORS:
                pass


def pump(port: SerialPort, stop: threading.Event, *, on_data: Callable[[bytes], None],
         on_tick: Callable[[], None], on_state: Callable[[bool, str], None]) -> None:
    """Until stopped: keep the port open, feed what it reads, tick timers; survive unplugging."""
    was_open = None
    while not stop.is_set():
        if not port.is_open:
            try:
                port.open()
            except PortGone as e:
                if was_open is not False:
                    log.warning("%s; waiting for it to come back", e)
                    on_state(False, str(e))
                was_open = False
                on_tick()
                stop.wait(REOPEN_EVERY)
                continue
            log.info("serial port %s is open", port.url)
            was_open = True
            on_state(True, "")
        try:
            data = port.read()
            if data:
                on_data(data)
            on_tick()
        except PortGone as e:
            port.close()
            log.warning("%s (unplugged?); waiting for it to come back", e)
            was_open = False
            on_state(False, str(e))
    port.close()
