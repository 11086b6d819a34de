"""`[drivers.astm]`: one analyser on a serial port, ASTM E1381/E1394, results stored then ACKed.

    [drivers.astm]
    url = "/dev/ttyUSB0"          # a device path or any pyserial URL (spy://, rfc2217://, socket://)
    baudrate = 9600               # optional
    device_id = "hba1c-analyser"  # optional, default "astm"; registered on first start
    [drivers.astm.codes]          # the analyser's test codes -> LOINC
    HbA1c = "4548-4"
    GLU = { code = "2339-0", unit = "mmol/L" }

The last frame of every message is acknowledged only after ingest() committed its results; a
message whose records cannot be read is NAKed (the analyser shows a transmission error) and
noted on the device (`clinic-edge device list`).
"""
from __future__ import annotations

import logging
import time
from zoneinfo import ZoneInfo

from edge.core import devices
from edge.core.ingest import STATUS_REFUSED, Group, commit_groups
from edge.core.node import Node

from edge.core import backoff
from ..errors import DriverError
from ..section import BAUDRATES, Option, device_id_ok, read_section
from ..serial_driver import SerialDriver
from ..serial_port import PortGone, SerialPort
from .codec import AstmFrameError
from .link import FRAME_TIMEOUT, Link, Message, Problem, Send, SessionEnded
from .results import Context, code_map, readings_from_message

log = logging.getLogger(__name__)
STORE_PATIENCE = 10      # seconds to keep retrying a failed commit: under the analyser's 15 s timer
PROBE_EVERY = 1.0        # seconds between checks whether a failing store takes writes again

OPTIONS = {
    "url": Option(str, "", "a serial device path or pyserial URL, e.g. /dev/ttyUSB0", bool, required=True),
    "baudrate": Option(int, 9600, f"one of {', '.join(map(str, BAUDRATES))}", lambda v: v in BAUDRATES),
    "parity": Option(str, "N", "N, E or O", lambda v: v in ("N", "E", "O")),
    "device_id": Option(str, "astm", "1-64 letters, digits, '.', '_' or '-'", device_id_ok),
    "name": Option(str, "", "a label the doctor recognises, e.g. 糖化血红蛋白仪"),
    "codes": Option(dict, {}, "a table TEST = \"LOINC\" or TEST = { code = \"LOINC\", unit = \"UCUM\" }"),
    "frame_timeout": Option(int, int(FRAME_TIMEOUT), "seconds, 5-120", lambda v: 5 <= v <= 120),
    "store_patience": Option(int, STORE_PATIENCE, "seconds, 1-14 (below the analyser's 15 s timer)",
                             lambda v: 1 <= v <= 14),
}


class AstmDriver(SerialDriver):
    name = "astm"
    transport = "astm"
    kind = "analyser"

    def __init__(self, node: Node, table: dict, *, port: SerialPort | None = None, monotonic=None,
                 on_commit=None):
        super().__init__()
        cfg = read_section(self.name, table, OPTIONS)
        try:
            self.codes = code_map(cfg["codes"])
        except ValueError as e:
            raise DriverError(f"config: drivers.{self.name}.{e}") from None
        self.node = node
        self.device_id = cfg["device_id"]
        self.label = cfg["name"]
        self.port = port or SerialPort(cfg["url"], {"baudrate": cfg["baudrate"], "parity": cfg["parity"]})
        self.monotonic = monotonic or time.monotonic
        self.on_commit = on_commit            # called after each commit (benchmark, tests)
        self.link = Link(frame_timeout=cfg["frame_timeout"])
        self.store_patience = cfg["store_patience"]
        self._busy_since: float | None = None
        self.tz = ZoneInfo(node.config["node"]["timezone"])
        self.context = Context()

    # -- lifecycle ---------------------------------------------------------------------------
    def _store_opened(self) -> None:
        # one lock wait must not outlast the analyser's patience (15 s); retries happen in _commit
        self.store.conn.execute(f"PRAGMA busy_timeout = {min(3000, self.store_patience * 500)}")

    def status(self) -> dict:
        link = {f"{self.name}_link_{k}": v for k, v in self.link.stats.items()}
        return {**super().status(), **link}

    # -- I/O ---------------------------------------------------------------------------------
    def _on_state(self, is_open: bool, reason: str) -> None:
        super()._on_state(is_open, reason)
        if not is_open:
            self.stats["port_lost"] += 1

    def _on_data(self, data: bytes) -> None:
        self._act(self.link.feed(data, self.monotonic()))

    def _on_tick(self) -> None:
        now = self.monotonic()
        if self._busy_since is not None and now - self._busy_since >= PROBE_EVERY:
            self._probe_store(now)
        self._act(self.link.tick(now))

    def _probe_store(self, now: float) -> None:
        """While the store refuses writes, ENQ is answered NAK (E1381 "not ready"); end that when it takes one."""
        try:
            with self.store.atomic():
                pass
        except Exception:
            self._busy_since = now
            return
        log.info("%s: the store takes writes again; accepting transmissions", self.device_id)
        self._busy_since = None
        self.link.busy = False

    def _act(self, actions: list) -> None:
        """Carry out the link's actions in order. If the port vanishes while writing, the rest is still
        carried out (a message is still stored or refused, so the link never waits forever) and the
        loss is reported afterwards; the analyser resends whatever was not ACKed."""
        queue, lost = list(actions), None
        while queue:
            action = queue.pop(0)
            if isinstance(action, Send):
                if lost is None:
                    try:
                        self.port.write(action.data)
                    except PortGone as e:
                        lost = e
            elif isinstance(action, Message):
                queue[0:0] = self._store(action.text)
            elif isinstance(action, SessionEnded):
                self.context = Context()
                if action.discarded:
                    log.warning("%s: incomplete message discarded (%s); the analyser will resend it",
                                self.device_id, action.reason)
            elif isinstance(action, Problem):
                log.info("%s: %s", self.device_id, action.reason)
        if lost is not None:
            raise lost

    # -- committing --------------------------------------------------------------------------
    def _store(self, text: bytes) -> list:
        try:
            readings, context = readings_from_message(text, self.context, device_id=self.device_id,
                                                      codes=self.codes, tz=self.tz)
        except AstmFrameError as e:
            return self._unreadable(str(e))
        except Exception as e:   # a parser bug: this message is refused, the driver goes on
            self.stats["parser_faults"] += 1
            log.exception("%s: the ASTM record parser failed", self.device_id)
            return self._unreadable(f"the message could not be read ({type(e).__name__}: {e})"[:300])
        problem = self._commit(readings)
        if problem:
            return self.link.not_stored(problem, self.monotonic())
        self.context = context
        if self.on_commit:
            self.on_commit(readings)
        return self.link.stored(self.monotonic())

    def _unreadable(self, reason: str) -> list:
        self.stats["bad_messages"] += 1
        log.warning("%s: message not readable, NAKed: %s", self.device_id, reason)
        self._note_error(reason)
        return self.link.not_stored(reason, self.monotonic())

    def _commit(self, readings: list) -> str | None:
        """None when committed; else why not (the frame is then NAKed and resent by the analyser)."""
        if not readings:
            return None
        deadline, attempt = self.monotonic() + self.store_patience, 0
        while True:
            try:
                [outcomes] = commit_groups(self.store, [Group(readings)], clock=self.node.clock)
                break
            except Exception as e:  # locked, disk full...: retry while the analyser still waits
                wait = backoff.delay(attempt, base=0.1, cap=2)
                attempt += 1
                if self.monotonic() + wait > deadline or self._stop.is_set():
                    log.error("%s: could not store %d results (%s); answering NAK until the store "
                              "takes writes again", self.device_id, len(readings), e)
                    self.stats["store_failures"] += 1
                    self.link.busy, self._busy_since = True, self.monotonic()
                    return f"could not store: {e}"
                time.sleep(wait)
        if isinstance(outcomes, str):   # these results cannot be stored (e.g. a time beyond 9999)
            self.stats["bad_messages"] += 1
            self._note_error(outcomes)
            return outcomes
        refused = [o.reason for o in outcomes if o.status == STATUS_REFUSED]
        if refused:
            return refused[0]
        self.stats["stored"] += sum(not o.duplicate for o in outcomes)
        self.stats["duplicates"] += sum(o.duplicate for o in outcomes)
        return None

    def _note_error(self, reason: str) -> None:
        try:
            devices.record_error(self.store, self.device_id, reason, now=self.node.clock.now())
        except Exception as e:  # a convenience for county IT; never block the protocol on it
            log.error("could not note the error of %s: %s", self.device_id, e)
