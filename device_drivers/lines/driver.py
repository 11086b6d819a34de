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
from zoneinfo import ZoneInfo

from edge.core import devices
from edge.core.ingest import ingest
from edge.core.node import Node

from ..section import BAUDRATES, Option, device_id_ok, read_section
from ..serial_driver import SerialDriver
from ..serial_port import SerialPort
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


class LineDriver(SerialDriver):
    name = "lines"
    transport = "lines"

    def __init__(self, node: Node, table: dict, *, port: SerialPort | None = None):
        super().__init__()
        cfg = read_section(self.name, table, OPTIONS)
        self.node = node
        self.profile = load(cfg["profile"])
        settings = dict(self.profile.serial)
        if cfg["baudrate"]:
            settings["baudrate"] = cfg["baudrate"]
        self.port = port or SerialPort(cfg["url"], settings)
        self.device_id = cfg["device_id"]
        self.label = cfg["name"] or self.profile.name
        self.kind = self.profile.kind
        self.tz = ZoneInfo(node.config["node"]["timezone"])
        self.splitter = LineSplitter()

    def _on_state(self, is_open: bool, reason: str) -> None:
        super()._on_state(is_open, reason)
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
