"""`[drivers.lines]`: a device that prints one reading per line, read through its profile.

    [drivers.lines]
    url = "/dev/ttyUSB1"              # a device path or any pyserial URL
    profile = "bp-sys-dia-pul"        # a shipped profile, or the path of a .toml profile
    device_id = "bp-printer"          # optional, default "lines"; registered on first start
    baudrate = 2400                   # optional: overrides the profile's serial settings

Such devices cannot be acknowledged or asked to repeat: each complete line is committed as it
arrives; a line cut by unplugging the adapter is dropped (its bytes are gone) and counted.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from zoneinfo import ZoneInfo

from edge.core import devices
from edge.core.ingest import ingest
from edge.core.node import Node
from edge.core.store import Store

from ..registration import ensure_device
from ..section import BAUDRATES, Option, device_id_ok, read_section
from ..serial_port import SerialPort, pump
from .profile import LineFrameError, LineSplitter, load, parse_line

log = logging.getLogger(__name__)

OPTIONS = {
    "url": Option(str, "", "a serial device path or pyserial URL, e.g. /dev/ttyUSB1", bool, required=True),
    "profile": Option(str, "", "a shipped profile name or the path of a .toml profile", bool, required=True),
    "device_id": Option(str, "lines", "1-64 letters, digits, '.', '_' or '-'", device_id_ok),
    "name": Option(str, "", "a label the doctor recognises, e.g. 诊室体重秤"),
    "baudrate": Option(int, 0, f"0 (the profile's) or one of {', '.join(map(str, BAUDRATES))}",
                       lambda v: v == 0 or v in BAUDRATES),
}


class LineDriver:
    name = "lines"

    def __init__(self, node: Node, table: dict, *, port: SerialPort | None = None):
        cfg = read_section(self.name, table, OPTIONS)
        self.node = node
        self.profile = load(cfg["profile"])
        settings = dict(self.profile.serial)
        if cfg["baudrate"]:
            settings["baudrate"] = cfg["baudrate"]
        self.port = port or SerialPort(cfg["url"], settings)
        self.device_id = cfg["device_id"]
        self.label = cfg["name"] or self.profile.name
        self.tz = ZoneInfo(node.config["node"]["timezone"])
        self.splitter = LineSplitter()
        self.stats: Counter = Counter()
        self._stop = threading.Event()
        self._port_open = False
        self._thread: threading.Thread | None = None
        self.store: Store | None = None

    def start(self) -> None:
        self.store = Store(self.node.config.store_path)
        ensure_device(self.store, self.device_id, kind=self.profile.kind, transport="lines", name=self.label,
                      now=self.node.clock.now(), driver=self.name)
        self._thread = threading.Thread(target=self._run, name="lines-serial", daemon=True)
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
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict:
        return {"lines_port_open": self._port_open, **{f"lines_{k}": v for k, v in self.stats.items()}}

    def _run(self) -> None:
        pump(self.port, self._stop, on_data=self._on_data, on_tick=lambda: None, on_state=self._on_state)

    def _on_state(self, is_open: bool, reason: str) -> None:
        self._port_open = is_open
        if not is_open and self.splitter.drop_partial():
            self.stats["lines_cut_by_unplug"] += 1

    def _on_data(self, data: bytes) -> None:
        readings = []
        for line in self.splitter.feed(data):
            try:
                readings += parse_line(self.profile, line, device_id=self.device_id,
                                       received=self.node.clock.now(), tz=self.tz)
            except LineFrameError as e:
                self.stats["unreadable_lines"] += 1
                log.warning("%s: %s", self.device_id, e)
                try:
                    devices.record_error(self.store, self.device_id, str(e), now=self.node.clock.now())
                except Exception as err:
                    log.error("could not note the error of %s: %s", self.device_id, err)
        if readings:
            try:
                outcomes = ingest(self.store, readings, clock=self.node.clock)
            except Exception as e:   # nothing to re-ask the device for: log loudly, keep running
                self.stats["lost_readings"] += len(readings)
                log.error("%s: could not store %d readings: %s", self.device_id, len(readings), e)
                return
            self.stats["stored"] += sum(not o.duplicate for o in outcomes)
