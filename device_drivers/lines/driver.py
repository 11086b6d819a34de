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
from edge.core.ingest import Group, commit_groups
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
        """Each line is one message: read and committed on its own (a poisonous line is refused
        with its reason, the lines around it are stored), all lines of one read in one commit."""
        now = self.node.clock.now()
        groups = []
        for line in self.splitter.feed(data):
            try:
                groups.append(Group(parse_line(self.profile, line, device_id=self.device_id,
                                               received=now, tz=self.tz)))
            except LineFrameError as e:
                self._refuse(str(e))
            except Exception as e:   # a parser bug: this line is refused, the driver goes on
                self.stats["parser_faults"] += 1
                log.exception("%s: the line parser failed", self.device_id)
                self._refuse(f"the line could not be read ({type(e).__name__}: {e})"[:300])
        if not groups:
            return
        try:
            results = commit_groups(self.store, groups, clock=self.node.clock)
        except Exception as e:   # nothing to re-ask the device for: log loudly, keep running
            self.stats["lost_readings"] += sum(len(g.readings) for g in groups)
            log.error("%s: could not store %d readings: %s", self.device_id, len(groups), e)
            return
        for result in results:
            if isinstance(result, str):
                self._refuse(result)
            else:
                self.stats["stored"] += sum(not o.duplicate for o in result)

    def _refuse(self, reason: str) -> None:
        self.stats["unreadable_lines"] += 1
        log.warning("%s: %s", self.device_id, reason)
        try:
            devices.record_error(self.store, self.device_id, reason, now=self.node.clock.now())
        except Exception as err:
            log.error("could not note the error of %s: %s", self.device_id, err)
