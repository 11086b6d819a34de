"""The small interface between the connection logic and a Bluetooth stack.

`BleakAdapter` (bleak_adapter.py) implements it on the real radio; `FakeAdapter` (fake.py)
replays recorded sessions in tests. Both raise only the BleLinkError subclasses of errors.py
(NoRadio, DeviceNotFound, LinkLost, BondLost, GattRefused, StepTimeout), so the connection logic
never sees a library's own exceptions. UUIDs cross this interface in their 16-bit form ('2a35').
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol

Notify = Callable[[bytes], None]


@dataclass(frozen=True)
class Advertisement:
    address: str                      # upper case, AA:BB:CC:DD:EE:FF
    name: str | None
    rssi: int | None
    service_uuids: tuple[str, ...]    # 16-bit form for SIG services ('1810'), else the full UUID


class Link(Protocol):
    address: str

    def characteristics(self) -> set[str]:
        """The characteristics the connected device offers (16-bit form)."""

    async def start_notify(self, uuid: str, callback: Notify) -> None:
        """Enable notifications or indications (whichever the characteristic has)."""

    async def write(self, uuid: str, data: bytes, *, response: bool = True) -> None: ...

    async def disconnect(self) -> None: ...


class Adapter(Protocol):
    async def scan(self, seconds: float) -> list[Advertisement]: ...

    async def connect(self, address: str, *, timeout: float, on_disconnect: Callable[[], None]) -> Link: ...


def date_time(now: datetime) -> bytes:
    """Date Time (0x2A08): year uint16, month, day, hours, minutes, seconds (local time)."""
    return now.year.to_bytes(2, "little") + bytes([now.month, now.day, now.hour, now.minute, now.second])


def current_time(now: datetime, *, adjust_reason: int = 0) -> bytes:
    """Current Time (0x2A2B): Date Time + day of week (1 = Monday) + fractions256 + adjust reason.

    `now` is the clinic's local time (the device shows it to the doctor).
    """
    return date_time(now) + bytes([now.isoweekday(), now.microsecond * 256 // 1_000_000, adjust_reason])
