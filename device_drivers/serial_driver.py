"""What every serial-port driver shares: its own store, its device registered on first start, a
thread pumping the port (serial_port.pump), and the port's state reported in status().

A subclass sets `name`, `transport`, `kind`, `device_id`, `label`, `port`, `node` and `stats`,
and implements `_on_data(bytes)`; it may override `_on_tick()`, `_on_state()` and
`_store_opened()`.
"""
from __future__ import annotations

import threading
from collections import Counter

from edge.core.node import Node
from edge.core.store import Store

from .registration import ensure_device
from .serial_port import SerialPort, pump


class SerialDriver:
    name: str
    transport: str
    kind: str
    node: Node
    port: SerialPort
    device_id: str
    label: str

    def __init__(self) -> None:
        self.stats: Counter = Counter()
        self._stop = threading.Event()
        self._port_open = False
        self._thread: threading.Thread | None = None
        self.store: Store | None = None

    # -- lifecycle (the runner's driver interface) -------------------------------------------
    def start(self) -> None:
        self.store = Store(self.node.config.store_path)
        self._store_opened()
        ensure_device(self.store, self.device_id, kind=self.kind, transport=self.transport, name=self.label,
                      now=self.node.clock.now(), driver=self.name)
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-serial", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)
        if self.store:
            self.store.close()

    @property
    def port_open(self) -> bool:
        return self._port_open

    def healthy(self) -> bool:
        """The driver is working. An unplugged or switched-off device is normal in a clinic (the
        driver waits for it), so the port's state is reported in status(), not as ill health."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict:
        return {f"{self.name}_port_open": self._port_open,
                **{f"{self.name}_{k}": v for k, v in self.stats.items()}}

    # -- I/O ---------------------------------------------------------------------------------
    def _run(self) -> None:
        pump(self.port, self._stop, on_data=self._on_data, on_tick=self._on_tick, on_state=self._on_state)

    def _store_opened(self) -> None:
        """Hook: tune the store before the first write."""

    def _on_tick(self) -> None:
        """Hook: called when the port has been quiet for a moment."""

    def _on_state(self, is_open: bool, reason: str) -> None:
        self._port_open = is_open

    def _on_data(self, data: bytes) -> None:
        raise NotImplementedError
