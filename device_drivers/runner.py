"""`clinic-edge ingest`: run every enabled driver in one process until SIGTERM/SIGINT.

A driver is an object with start(), stop(), join(timeout), healthy() and status(). Each
`[drivers.NAME]` section of the config enables the driver registered here under NAME
(PINNED in the serial issue: astm, mllp, lines, ble); MQTT runs when `[mqtt] enabled`.
Factories are imported lazily so a missing optional library only affects its own driver.
"""
from __future__ import annotations

import importlib
import logging
import signal
import threading

from edge.core import sdnotify
from edge.core.node import Node
from edge.core.watchdog import store_problem, tell_waiting

from .errors import DriverError

log = logging.getLogger(__name__)

# name -> "module:factory"; factory(node, table) returns a driver
DRIVER_FACTORIES: dict[str, str] = {
    "mqtt": "device_drivers.mqtt.driver:MqttDriver",
    "astm": "device_drivers.astm.driver:AstmDriver",
    "mllp": "device_drivers.hl7.driver:MllpDriver",
    "lines": "device_drivers.lines.driver:LineDriver",
    "ble": "device_drivers.ble.driver:BleDriver",
}


def build(node: Node) -> list:
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


def _factory(name: str):
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


def _watch(node: Node, drivers: list, stop: threading.Event, every: float = 1.0, refresh: float = 30.0) -> None:
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
