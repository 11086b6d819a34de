"""Bounds-checked reading of GATT fields, shared by the parsers.

A `Cursor` walks one characteristic value and raises the parser's own FrameError (with what was
missing and where) instead of IndexError/struct.error, so a parser can raise nothing else.
Date Time (0x2A08) fields carry no zone: they are the device's local time, read in the clinic's
zone `tz`; a date the device marks unknown (year/month/day 0) gives no device time, only a note.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from edge.core.reading import storable_time

from . import ieee11073
from .errors import BleFrameError


class Cursor:
    def __init__(self, data: bytes, error: type[BleFrameError], what: str):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise error(f"{what}: expected bytes, got {type(data).__name__}")
        self.data = bytes(data)
        self.pos = 0
        self.error = error
        self.what = what

    def take(self, n: int, field: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise self.error(f"{self.what}: {len(self.data)} bytes end before {field} "
                             f"(needs bytes {self.pos}-{end - 1}); flags say it is present")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def s16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little", signed=True)

    def u24(self, field: str) -> int:
        return int.from_bytes(self.take(3, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def sfloat(self, field: str) -> ieee11073.Number:
        return ieee11073.sfloat(self.u16(field))

    def float32(self, field: str) -> ieee11073.Number:
        return ieee11073.float32(self.u32(field))

    def date_time(self, field: str, tz: tzinfo) -> "DeviceTime":
        return date_time(self.take(7, field), tz, self.error, self.what)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        """Trailing bytes are allowed (later spec versions append fields) but noted by callers."""


@dataclass(frozen=True)
class DeviceTime:
    when: datetime | None       # None when the device said the date is unknown
    text: str                   # as sent, e.g. "????-04-17 20:41:59"


def date_time(raw: bytes, tz: tzinfo, error: type[BleFrameError], what: str) -> DeviceTime:
    year = int.from_bytes(raw[0:2], "little")
    month, day, hour, minute, second = raw[2], raw[3], raw[4], raw[5], raw[6]
    text = (f"{year:04d}" if year else "????") + f"-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    if hour > 23 or minute > 59 or second > 59 or month > 12 or day > 31 or (year and not 1582 <= year <= 9999):
        raise error(f"{what}: Date Time {text} is not a valid time")
    if not (year and month and day):
        return DeviceTime(None, text)
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        raise error(f"{what}: Date Time {text} is not a valid date") from None
    if not storable_time(when):     # 9999-12-31 23:00 west of UTC is in year 10000 in UTC
        raise error(f"{what}: Date Time {text} is beyond the last time that can be kept (9999-12-31 UTC)")
    return DeviceTime(when, text)


def shifted(t: DeviceTime, minutes: int, error: type[BleFrameError], what: str) -> DeviceTime:
    """`t` moved by a time offset in minutes (glucose); a result beyond 9999-12-31 (or before
    year 1) raises the parser's own error, never OverflowError."""
    if t.when is None:
        return t
    try:
        when = t.when + timedelta(minutes=minutes)
    except OverflowError:
        when = None
    if when is None or not storable_time(when):
        raise error(f"{what}: base time {t.text} plus time offset {minutes} min is beyond the last time "
                    "that can be kept (9999-12-31 UTC)")
    return DeviceTime(when, t.text)


def bits(value: int, names: dict[int, str]) -> list[str]:
    """Names of the set bits (bit number -> name); unknown set bits are named `bitN`."""
    out = [name for bit, name in names.items() if value >> bit & 1]
    unknown = value & ~sum(1 << b for b in names)
    while unknown:
        low = unknown & -unknown
        out.append(f"bit{low.bit_length() - 1}")
        unknown ^= low
    return out


def source_key(characteristic: str, code: str, t: DeviceTime, received: datetime | None, raw: bytes,
               extra: str = "") -> str:
    """What makes a reading unique at its device.

    With a device timestamp the same measurement re-sent later (stored records, a retried
    indication) gets the same key and is stored once. Without one, two identical values are two
    readings, so the receive time and the bytes make the key.
    """
    if t.when is not None:
        return f"{characteristic}|{code}|{t.when.isoformat()}|{extra}"
    stamp = received.isoformat() if received else ""
    return f"{characteristic}|{code}|rx:{stamp}|{raw.hex()}|{extra}"
