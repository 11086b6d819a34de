"""The E1381 receiver as a pure state machine: bytes and a clock in, actions out.

No I/O here: the driver feeds what the port read (`feed(data, now)`), calls `tick(now)` while
idle, writes every `Send` it gets back, and answers each `Message` with `stored()` once its
results are committed (the frame's ACK goes out only then) or `not_stored(reason)` (NAK: the
analyser retransmits the frame). Timers come from the `now` it is given, so tests inject time.

States: idle (waiting for ENQ) -> transfer (frames) -> storing (last frame of a message held
unacknowledged) -> transfer ... -> idle on EOT or after `frame_timeout` seconds of silence.
Lenient where analysers are: frames longer than 247 characters, CR/LF variations after the
checksum, lowercase checksum digits, noise between frames (counted and ignored).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .codec import ACK, AstmFrameError, ENQ, EOT, ETB, ETX, NAK, STX, decode_frame

FRAME_TIMEOUT = 30.0        # receiver: 30 s between frames, then the incomplete message is discarded
MAX_FRAME = 64 * 1024       # far above 247: real analysers send longer frames (senaite DCA Vantage: 307)
_STX, _ETX, _ETB, _ENQ, _EOT = STX[0], ETX[0], ETB[0], ENQ[0], EOT[0]
_TRAILER = b"\r\n"
_SPECIAL = re.compile(rb"[\x02\x03\x04\x05\x17]")     # STX ETX EOT ENQ ETB: what ends or cuts a frame's text


@dataclass(frozen=True)
class Send:
    """Bytes to write to the analyser now."""
    data: bytes


@dataclass(frozen=True)
class Message:
    """A complete E1381 message (its frames' text joined); answer with stored() or not_stored()."""
    text: bytes


@dataclass(frozen=True)
class SessionEnded:
    """The analyser's transmission is over (EOT), or was abandoned (timeout, restart)."""
    reason: str
    discarded: bool = False     # an incomplete message was thrown away


@dataclass(frozen=True)
class Problem:
    """Something a person may want to know about (bad frame, noise); nothing to send."""
    reason: str


class Link:
    IDLE, TRANSFER, STORING = "idle", "transfer", "storing"

    def __init__(self, *, frame_timeout: float = FRAME_TIMEOUT, max_frame: int = MAX_FRAME):
        self.frame_timeout = frame_timeout
        self.max_frame = max_frame
        self.state = self.IDLE
        self.busy = False               # set by the driver when it cannot store: ENQ gets NAK
        self.stats: Counter = Counter()
        self._reset_message()
        self._frame: bytearray | None = None    # bytes of the frame being received (from STX)
        self._checksum_left: int | None = None  # checksum digits still to come after ETX/ETB
        self._backlog = bytearray()             # bytes that arrived while storing
        self._last_byte_at: float | None = None

    # -- inputs ------------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> list:
        if data:
            self._last_byte_at = now
        if self.state == self.STORING:
            self._backlog += data
            return []
        out: list = []
        i = 0
        while i < len(data):
            if self.state == self.STORING:       # a message completed inside this chunk
                self._backlog += data[i:]
                break
            if self._frame is not None:
                i = self._collect(data, i, out)
            else:
                self._control(data[i], out)
                i += 1
        return out

    def tick(self, now: float) -> list:
        """Apply the receiver timer; call it regularly (the driver does, between reads)."""
        if self.state != self.TRANSFER or self._last_byte_at is None:
            return []
        if now - self._last_byte_at <= self.frame_timeout:
            return []
        self.stats["timeouts"] += 1
        return self._end(f"no frame for {self.frame_timeout:g} s", count="timeout")

    def stored(self, now: float) -> list:
        """The pending message is committed: acknowledge its last frame, go on with what waited."""
        if self.state != self.STORING:
            return []
        self.stats["messages"] += 1
        self._acked(self._expected, self._pending_raw)
        self._reset_message(keep_numbers=True)
        self.state = self.TRANSFER
        return [Send(ACK), *self._drain(now)]

    def not_stored(self, reason: str, now: float) -> list:
        """The pending message could not be stored: NAK its last frame (the analyser resends it)."""
        if self.state != self.STORING:
            return []
        self.stats["not_stored"] += 1
        self.state = self.TRANSFER
        return [Send(NAK), Problem(reason), *self._drain(now)]

    # -- internals ---------------------------------------------------------------------------
    def _reset_message(self, keep_numbers: bool = False) -> None:
        self._parts: list[bytes] = []
        if not keep_numbers:
            self._expected = 1
            self._last_acked: int | None = None
            self._last_raw = b""
            self._pending_raw = b""

    def _drain(self, now: float) -> list:
        backlog, self._backlog = bytes(self._backlog), bytearray()
        return self.feed(backlog, now) if backlog else []

    def _control(self, byte: int, out: list) -> None:
        """A byte outside a frame."""
        if byte == _ENQ:
            out.extend(self._on_enq())
        elif self.state == self.IDLE:
            if byte not in _TRAILER:
                self.stats["noise_bytes"] += 1
        elif byte == _STX:
            self._frame, self._checksum_left = bytearray(b"\x02"), None
        elif byte == _EOT:
            out.extend(self._end("EOT", count="sessions"))
        elif byte not in _TRAILER:
            self.stats["noise_bytes"] += 1

    def _on_enq(self) -> list:
        if self.busy:
            self.stats["busy_naks"] += 1
            return [Send(NAK)]
        out = []
        if self.state == self.TRANSFER and (self._parts or self._frame is not None):
            # the analyser started over: what it had sent of this message is void
            out.extend(self._end("ENQ during transfer: the analyser restarted", count="restarts"))
        elif self.state == self.TRANSFER:
            self.stats["repeated_enq"] += 1      # its ENQ crossed our ACK: answer again
        self.state = self.TRANSFER
        self._reset_message()
        return [*out, Send(ACK)]

    def _end(self, reason: str, *, count: str) -> list:
        discarded = bool(self._parts) or self._frame is not None
        self.stats[count] += 1
        if discarded:
            self.stats["discarded_messages"] += 1
        self._frame, self._checksum_left = None, None
        self._reset_message()
        self.state = self.IDLE
        return [SessionEnded(reason, discarded)]

    def _collect(self, data: bytes, i: int, out: list) -> int:
        """Add bytes to the current frame; returns the index of the first byte not consumed."""
        frame = self._frame
        if self._checksum_left is None:           # in the text: look for its end (or a cut)
            m = _SPECIAL.search(data, i)
            j = len(data) if m is None else m.start()
            frame += data[i:j]
            if len(frame) > self.max_frame:
                self._frame = None
                out.extend(self._reject(f"frame longer than {self.max_frame} bytes"))
                return len(data) if m is None else j
            if m is None:
                return j
            if data[j] not in (_ETX, _ETB):       # STX/ENQ/EOT inside the text: the frame was cut short
                self.stats["broken_frames"] += 1
                self._frame = None
                out.append(Problem("frame cut short by a control character"))
                return j                          # handled next as a control byte
            frame.append(data[j])
            self._checksum_left = 2
            i = j + 1
        take = min(self._checksum_left, len(data) - i)
        frame += data[i:i + take]
        self._checksum_left -= take
        if self._checksum_left == 0:
            self._frame, self._checksum_left = None, None
            out.extend(self._on_frame(bytes(frame)))
        return i + take

    def _on_frame(self, raw: bytes) -> list:
        try:
            number, text, last = decode_frame(raw)
        except AstmFrameError as e:
            return self._reject(str(e))
        if number == self._last_acked and raw == self._last_raw:
            self.stats["repeated_frames"] += 1      # our ACK was lost; the analyser sent it again
            return [Send(ACK)]
        if number != self._expected and number == 1 and not self._parts:
            self.stats["renumbered_messages"] += 1  # lenient: some analysers start every message at 1
        elif number != self._expected:
            return self._reject(f"frame number {number}, expected {self._expected}")
        self.stats["frames"] += 1
        self._expected = number                     # the frame being answered now
        self._pending_raw = raw
        if last:
            self.state = self.STORING
            return [Message(b"".join(self._parts) + text)]
        self._parts.append(text)
        self._acked(number, raw)
        return [Send(ACK)]

    def _acked(self, number: int, raw: bytes) -> None:
        self._last_acked, self._last_raw = number, raw
        self._expected = (number + 1) % 8

    def _reject(self, reason: str) -> list:
        self.stats["naks"] += 1
        return [Send(NAK), Problem(reason)]
