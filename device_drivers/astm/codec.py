"""E1381 frames: `STX FN text ETB|ETX C1 C2 CR LF`, checksum = sum(FN..ETB/ETX) mod 256 in hex.

docs/devices.md, ASTM low level; python-astm `astm/codec.py` (make_checksum, split) was read, not copied.
"""
from __future__ import annotations

from ..errors import FrameError

ENQ, ACK, NAK, EOT = b"\x05", b"\x06", b"\x15", b"\x04"
STX, ETX, ETB = b"\x02", b"\x03", b"\x17"
CR, LF = b"\r", b"\n"
MAX_TEXT = 240          # 247 characters per frame minus 7 of overhead (E1381)


class AstmFrameError(FrameError):
    """Bytes that are not an E1381 frame or not E1394 records."""


def checksum(body: bytes) -> bytes:
    """Two uppercase hex digits of the byte sum of FN..ETB/ETX, modulo 256."""
    return b"%02X" % (sum(body) & 0xFF)


def make_frame(number: int, text: bytes, last: bool) -> bytes:
    body = b"%d" % (number % 8) + text + (ETX if last else ETB)
    return STX + body + checksum(body) + CR + LF


def split_message(text: bytes, *, size: int = MAX_TEXT, first: int = 1) -> list[bytes]:
    """Frames for one message: ETB on all but the last, frame numbers first..7,0,1..."""
    chunks = [text[i:i + size] for i in range(0, len(text), size)] or [b""]
    return [make_frame(first + i, c, i == len(chunks) - 1) for i, c in enumerate(chunks)]


def decode_frame(frame: bytes) -> tuple[int, bytes, bool]:
    """(frame number, text, is_last) of one frame `STX .. C1 C2 [CR] [LF]`; raises AstmFrameError."""
    if not frame.startswith(STX):
        raise AstmFrameError("a frame must start with STX")
    end = max(frame.rfind(ETX), frame.rfind(ETB))
    if end < 2:
        raise AstmFrameError("frame has no ETX or ETB")
    got = frame[end + 1:end + 3]
    if len(got) != 2:
        raise AstmFrameError("frame ends before its two checksum digits")
    trailer = frame[end + 3:]
    if trailer.strip(CR + LF):
        raise AstmFrameError("unexpected bytes after the checksum")
    body = frame[1:end + 1]
    fn = body[:1]
    if not fn.isdigit() or int(fn) > 7:
        raise AstmFrameError(f"frame number {fn!r} is not 0-7")
    want = checksum(body)
    if got.upper() != want:
        raise AstmFrameError(f"checksum {got.decode('latin-1')!r} does not match {want.decode()}")
    return int(fn), body[1:-1], body[-1:] == ETX
