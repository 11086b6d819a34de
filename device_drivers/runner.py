"""`clinic-edge ingest`: run every enabled driver in one process until SIGTERM/SIGINT.

A driver is anything that satisfies `Driver` below (as a BLE stack satisfies
`device_drivers.ble.adapter.Adapter`); tests/test_driver_protocol.py checks every registered one. Each
`[drivers.NAME]` section of the config enables the driver registered here under NAME
(PINNED in the serial issue: astm, mllp, lines, ble); MQTT runs when `[mqtt] enabled`.
Factories are imported lazily so a missing optional library only affects its own driver.
"""
from __future__ import annotations

import importlib
import logging
import signal
import threading
from typing import Callable, Protocol, runtime_checkable

from edge.core import sdnotify
from edge.core.node import Node
from edge.core.watchdog import store_problem, tell_waiting

from .errors import DriverError

log = logging.getLogger(__name__)


@runtime_checkable
class Driver(Protocol):
    """What the runner needs of a driver; nothing else of it is called from here."""

    name: str                  # its config name; prefixes its status keys

    def start(self) -> None:
        """Open its store and transport and start its threads; return at once."""

    def stop(self) -> None:
        """Ask it to stop (from a signal handler): finish the transaction in hand, take no new input."""

    def join(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` s for its threads, then close what it opened."""

    def healthy(self) -> bool:
        """Working (threads alive, not wedged); false makes the systemd watchdog restart ingest."""

    def status(self) -> dict:
        """Flat JSON-able counters and states for the status file (`<name>_...` keys)."""


# a factory is called (node, table) with its [drivers.NAME] table; "mqtt" with (node) alone
DriverFactory = Callable[..., Driver]
# name -> "module:factory"
DRIVER_FACTORIES: dict[str, str] = {
    "mqtt": "device_drivers.mqtt.driver:MqttDriver",
    "astm": "device_drivers.astm.driver:AstmDriver",
    "mllp": "device_drivers.hl7.driver:MllpDriver",
    "lines": "device_drivers.lines.driver:LineDriver",
    "ble": "device_drivers.ble.driver:BleDriver",
}


def build(node: Node) -> list[Driver]:
    drivers = []
    if node.config["mqtt"]["enabled"]:
        drivers.append(_factory("mqtt")(node))
    for name, table in sorted(node.config.get("drivers", {}).items()):
        if node.config.driver(name) is None:
            continue
        if name not in DRIVER_FACTORIES or name == "mqtt":
            raise DriverError(f"config: [drivers.{name}] is not a known driver; known: "
                              f"{', '.join(n for n in DRIVER_FACTORIES if n != 'mqtt')}")
        drivers.append(_factory(name)(node, table))
    return drivers


def _factory(name: str) -> DriverFactory:
    module, _, attr = DRIVER_FACTORIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def run(node: Node, stop: threading.Event | None = None, *, install_signals: bool = True) -> int:
    stop = stop or threading.Event()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    node.store  # migrate and integrity-check before any device is heard
    drivers = build(node)
    if not drivers:
        log.warning("no driver is enabled: set [mqtt] enabled = true or add a [drivers.NAME] section")
    for d in drivers:
        d.start()
        log.info("driver %s started", d.name)
    sdnotify.notifier().ready("ingest started")
    _watch(node, drivers, stop)
    log.info("stopping: finishing the current transaction")
    sdnotify.notifier().stopping("finishing the current transaction")
    for d in drivers:
        d.stop()
    for d in drivers:
        d.join(timeout=15)
    status = {}
    for d in drivers:
        status.update(d.status())
    node.write_status("ingest", {**status, "mqtt_connected": False, "stopped": True})
    return 0


def _watch(node: Node, drivers: list[Driver], stop: threading.Event, every: float = 1.0, refresh: float = 30.0) -> None:
    """Until stopped: write the status file when a driver's health changes (and every `refresh` s)."""
    last, written = None, 0.0
    clock = 0.0
    while not stop.wait(every):
        clock += every
        status = {"drivers": {d.name: d.healthy() for d in drivers}}
        for d in drivers:
            status.update(d.status())
        health = status["drivers"]
        _feed_watchdog(node, health)
        if health != last or clock - written >= refresh:
            try:
                node.write_status("ingest", status)
            except OSError as e:
                log.error("cannot write the status file: %s", e)
            last, written = health, clock


def _feed_watchdog(node: Node, health: dict[str, bool], notify: sdnotify.Notifier | None = None) -> bool:
    """systemd's WATCHDOG=1 only while every driver is healthy (broker connected) and the store
    takes a write lock: a stuck or disconnected ingest is restarted by systemd (WatchdogSec=)."""
    notify = notify or sdnotify.notifier()
    if not notify.due() or not all(health.values()):
        return False
    if not tell_waiting(notify, store_problem(node.config.store_path)):   # a full disk: wait, say why
        return False
    return notify.watchdog()
