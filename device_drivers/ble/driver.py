"""The BLE driver as `clinic-edge ingest` runs it: `[drivers.ble]` in the node's config.

Its asyncio loop runs in its own thread (start/stop/join/healthy/status like the MQTT driver).
healthy() means "the loop is alive and not wedged", not "a device is connected": devices come and
go all day, and a box without a radio should keep ingesting MQTT and serial readings rather than
be restarted by the watchdog; the radio's state is in status().
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from zoneinfo import ZoneInfo

from edge.core.node import Node
from edge.core.store import Store

from .connections import BleConnections
from .settings import BleSettings

log = logging.getLogger(__name__)


class BleDriver:
    name = "ble"

    def __init__(self, node: Node, table: dict | None = None, *, adapter_factory=None, store_factory=None):
        self.node = node
        self.settings = BleSettings.from_table(table or {})
        self.tz = ZoneInfo(node.config["node"]["timezone"])
        self._adapter_factory = adapter_factory or self._bleak
        self._store_factory = store_factory or (lambda: Store(node.config.store_path))
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connections: BleConnections | None = None
        self._stopping = threading.Event()
        self.crashed: str | None = None

    def _bleak(self):
        from .bleak_adapter import BleakAdapter   # bleak is imported only when the radio is used
        return BleakAdapter(self.settings.adapter)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="ble", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        loop, conn = self._loop, self.connections
        if loop is not None and conn is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(conn.stop.set)
            except RuntimeError:   # the loop just ended
                pass

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self) -> bool:
        if self._thread is None or not self._thread.is_alive() or self.connections is None:
            return False
        s = self.settings
        wedged_after = s.scan_seconds + s.session_timeout * 4 + s.backoff_cap + 60
        return time.monotonic() - self.connections.heartbeat < wedged_after

    def status(self) -> dict:
        base = {"ble_running": bool(self._thread and self._thread.is_alive())}
        if self.crashed:
            base["ble_crashed"] = self.crashed
        if self.connections is not None:
            base.update(self.connections.status())
        return base

    def _main(self) -> None:
        store = self._store_factory()
        try:
            asyncio.run(self._run(store))
        except Exception as e:   # a bug: say so in the status, the watchdog restarts the service
            self.crashed = f"{type(e).__name__}: {e}"
            log.exception("the BLE driver stopped")
        finally:
            store.close()

    async def _run(self, store) -> None:
        self._loop = asyncio.get_running_loop()
        self.connections = BleConnections(store, self._adapter_factory(), settings=self.settings,
                                          clock=self.node.clock, tz=self.tz)
        if self._stopping.is_set():
            self.connections.stop.set()
        await self.connections.run()
