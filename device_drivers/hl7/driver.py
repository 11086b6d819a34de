"""`[drivers.mllp]`: a TCP listener for HL7 v2 ORU^R01 over MLLP from bedside monitors.

    [drivers.mllp]
    listen = "0.0.0.0:2575"        # host:port
    device_id = "ward-monitor"     # optional, default "mllp"; registered on first start
    [drivers.mllp.codes]           # optional: an analyser's own OBX-3 codes -> LOINC
    HGB = "718-7"                  # (OBX-3 coded ^LN is taken as LOINC without a table)

Each message is parsed, its readings committed, and only then answered AA; a malformed message
is answered AE with the reason (AR for a message type other than ORU^R01), noted on the device
and nothing is stored. When the store cannot take the readings the connection is closed without
an ACK, so the monitor sends the message again. A connection dropped mid-message stores nothing.
"""
from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

from edge.core import devices
from edge.core.corrections import supersede_earlier
from edge.core.ingest import STATUS_REFUSED, Group, commit_groups
from edge.core.node import Node
from edge.core.store import Store

from ..errors import DriverError
from ..registration import ensure_device
from ..section import Option, device_id_ok, read_section
from .mllp import MAX_MESSAGE, Decoder, frame
from .oru import SUPERSEDING, Hl7FrameError, ack, parse_header, parse_oru, segments

log = logging.getLogger(__name__)
IDLE_TIMEOUT = 300       # seconds a silent connection is kept open
UNSUPPORTED = "is not supported"


def _listen_ok(v: str) -> bool:
    host, _, port = v.rpartition(":")
    return bool(host) and port.isdigit() and 0 <= int(port) <= 65535


OPTIONS = {
    "listen": Option(str, "", "HOST:PORT, e.g. 0.0.0.0:2575", _listen_ok, required=True),
    "device_id": Option(str, "mllp", "1-64 letters, digits, '.', '_' or '-'", device_id_ok),
    "name": Option(str, "", "a label the doctor recognises, e.g. 监护仪"),
    "max_message": Option(int, MAX_MESSAGE, "bytes, 1024-16777216", lambda v: 1024 <= v <= 1 << 24),
    "idle_timeout": Option(int, IDLE_TIMEOUT, "seconds, 5-86400", lambda v: 5 <= v <= 86400),
    "codes": Option(dict, {}, "a table TEST = \"LOINC\", e.g. HGB = \"718-7\"",
                    lambda v: all(isinstance(c, str) and c for c in v.values())),
}


class MllpDriver:
    name = "mllp"

    def __init__(self, node: Node, table: dict, *, on_commit=None):
        cfg = read_section(self.name, table, OPTIONS)
        self.node = node
        host, _, port = cfg["listen"].rpartition(":")
        self.listen = (host.strip("[]"), int(port))
        self.device_id = cfg["device_id"]
        self.label = cfg["name"]
        self.max_message = cfg["max_message"]
        self.idle_timeout = cfg["idle_timeout"]
        self.codes = dict(cfg["codes"])
        self.on_commit = on_commit
        self.tz = ZoneInfo(node.config["node"]["timezone"])
        self.stats: Counter = Counter()
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.store: Store | None = None
        self.address: tuple[str, int] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.store = Store(self.node.config.store_path)
        ensure_device(self.store, self.device_id, kind="monitor", transport="hl7", name=self.label,
                      now=self.node.clock.now(), driver=self.name)
        family = socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(self.listen)
        except OSError as e:
            server.close()
            raise DriverError(f"config: drivers.mllp.listen = {self.listen[0]}:{self.listen[1]}: cannot listen ({e})") from e
        server.listen(16)
        server.settimeout(0.2)
        self._server = server
        self.address = server.getsockname()[:2]
        t = threading.Thread(target=self._accept_loop, name="mllp-accept", daemon=True)
        t.start()
        self._threads.append(t)
        log.info("MLLP listener on %s:%d", *self.address)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        for t in list(self._threads):
            t.join(timeout)
        if self._server:
            self._server.close()
        if self.store:
            self.store.close()

    def healthy(self) -> bool:
        return bool(self._threads) and self._threads[0].is_alive()

    def status(self) -> dict:
        return {"mllp_listening": self.healthy(), **{f"mllp_{k}": v for k, v in self.stats.items()}}

    # -- connections -------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._server.accept()
            except socket.timeout:
                self._threads = [t for t in self._threads if t.is_alive() or t is self._threads[0]]
                continue
            except OSError as e:
                log.error("MLLP listener failed: %s", e)
                return
            self.stats["connections"] += 1
            t = threading.Thread(target=self._serve, args=(conn, peer), name=f"mllp-{peer[1]}", daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket, peer) -> None:
        decoder = Decoder(self.max_message)
        conn.settimeout(0.5)
        idle = 0.0
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    idle += 0.5
                    if idle >= self.idle_timeout:
                        break
                    continue
                except OSError:
                    break
                if not data:
                    break
                idle = 0.0
                for item in decoder.feed(data):
                    reply = self._reply_to(item)
                    if reply is None:
                        return             # not stored: close without ACK, the monitor resends
                    try:
                        conn.sendall(frame(reply))
                    except OSError:
                        return
            if decoder.in_message:
                self.stats["dropped_mid_message"] += 1
                log.warning("MLLP connection from %s closed mid-message; nothing of it was stored", peer[0])

    def _reply_to(self, item) -> bytes | None:
        now = self.node.clock.now().astimezone(self.tz)
        ack_id = uuid.uuid4().hex[:20]
        if isinstance(item, Hl7FrameError):
            return self._refuse(None, item, now, ack_id)
        try:
            header, readings = parse_oru(item, device_id=self.device_id, tz=self.tz, codes=self.codes)
        except Hl7FrameError as e:
            return self._refuse(_header_or_none(item), e, now, ack_id)
        except Exception as e:   # a parser bug: this message is answered AE, the listener goes on
            self.stats["parser_faults"] += 1
            log.exception("the HL7 parser failed on a message")
            return self._refuse(_header_or_none(item), Hl7FrameError(_unreadable(e)), now, ack_id)
        try:
            # a correction and the result it replaces: one commit
            group = Group(readings, then=lambda conn, outs: self._supersede(conn, readings, outs, now))
            [outcomes] = commit_groups(self.store, [group], clock=self.node.clock)
        except Exception as e:   # locked, disk full...: no ACK, the monitor will resend
            log.error("could not store an HL7 message (%d readings): %s", len(readings), e)
            self.stats["store_failures"] += 1
            return None
        if isinstance(outcomes, str):   # this message cannot be stored (e.g. a time beyond 9999)
            return self._refuse(header, Hl7FrameError(outcomes), now, ack_id)
        refused = [o.reason for o in outcomes if o.status == STATUS_REFUSED]
        if refused:
            return self._refuse(header, Hl7FrameError(refused[0]), now, ack_id)
        self.stats["messages"] += 1
        self.stats["stored"] += sum(not o.duplicate for o in outcomes)
        self.stats["duplicates"] += sum(o.duplicate for o in outcomes)
        if self.on_commit:
            self.on_commit(readings)
        return ack(header, "AA", now=now, ack_id=ack_id)

    def _supersede(self, conn, readings, outcomes, now) -> None:
        """OBX-11 C, W, D: the device's earlier result for the same observation is voided, linked to
        the reading that replaces it (edge.core.corrections)."""
        for r, o in zip(readings, outcomes):
            reason = SUPERSEDING.get(str(r.meta.get("result_status", "")).strip().upper())
            if reason and not o.duplicate and o.status != STATUS_REFUSED:
                replaced = supersede_earlier(conn, o.id, reason=reason, at=now, actor=f"device:{self.device_id}")
                self.stats["superseded"] += len(replaced)

    def _refuse(self, header, error: Hl7FrameError, now, ack_id: str) -> bytes:
        code = "AR" if UNSUPPORTED in str(error) else "AE"
        self.stats["rejected_messages"] += 1
        log.warning("HL7 message answered %s: %s", code, error)
        try:
            devices.record_error(self.store, self.device_id, str(error), now=now)
        except Exception as e:
            log.error("could not note the error of %s: %s", self.device_id, e)
        return ack(header, code, now=now, ack_id=ack_id, text=str(error))


def _header_or_none(message: bytes):
    try:
        return parse_header(segments(message)[0])
    except Exception:   # whatever is wrong with it, the AE goes out without the header's ids
        return None


def _unreadable(e: Exception) -> str:
    return f"the message could not be read ({type(e).__name__}: {e})"[:300]
