"""MLLP framing: 0x0B + message + 0x1C 0x0D (python-hl7 tests/test_mllp.py; docs/devices.md, HL7).

`Decoder.feed()` takes whatever the socket read and returns the complete messages in it; bytes
outside a block are counted and ignored. Lenient: a block ended by 0x1C without the 0x0D.
"""
from __future__ import annotations

from .oru import Hl7FrameError

START, END, TRAILER = b"\x0b", b"\x1c", b"\x0d"
MAX_MESSAGE = 1 << 20


def frame(message: bytes) -> bytes:
    return START + message + END + TRAILER


class Decoder:
    def __init__(self, max_message: int = MAX_MESSAGE):
        self.max_message = max_message
        self._buf: bytearray | None = None     # inside a block when not None
        self.noise_bytes = 0

    @property
    def in_message(self) -> bool:
        return self._buf is not None

    def feed(self, data: bytes) -> list[bytes | Hl7FrameError]:
        """Complete messages (bytes) and framing errors (Hl7FrameError, to answer with AE), in order."""
        out: list[bytes | Hl7FrameError] = []
        i = 0
        while i < len(data):
            if self._buf is None:
                start = data.find(START, i)
                skipped = data[i:] if start < 0 else data[i:start]
                self.noise_bytes += len(skipped.replace(TRAILER, b"").replace(b"\n", b""))
                if start < 0:
                    break
                self._buf = bytearray()
                i = start + 1
                continue
            end = data.find(END, i)
            restart = data.find(START, i, end if end >= 0 else len(data))
            if restart >= 0:     # a new block began before this one ended: the first was cut short
                out.append(Hl7FrameError("an MLLP block was cut short by the start of the next one"))
                self._buf = bytearray()
                i = restart + 1
                continue
            chunk = data[i:] if end < 0 else data[i:end]
            if len(self._buf) + len(chunk) > self.max_message:
                out.append(Hl7FrameError(f"message longer than {self.max_message} bytes"))
                self._buf = None
                i = len(data) if end < 0 else end + 1
                continue
            self._buf += chunk
            if end < 0:
                break
            out.append(bytes(self._buf))
            self._buf = None
            i = end + 1
        return out
