"""Time as this box knows it: wall clock (untrusted, no RTC), boot id and monotonic time.

A Raspberry Pi boots in 1970 or at its last saved time until NTP or the hub tells it better.
Every reading keeps (boot_id, monotonic) so its true time can be recomputed once the offset
between the wall clock and real time is learned (docs/architecture.md, rule 3).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

# Earliest wall-clock time this software can really be running at: anything before means the
# clock was never set since boot.
EARLIEST_PLAUSIBLE = datetime(2025, 1, 1, tzinfo=timezone.utc)
_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def _read_boot_id() -> str:
    try:
        return _BOOT_ID_FILE.read_text().strip()
    except OSError:
        return "nobootid-" + uuid.uuid4().hex


@dataclass(frozen=True)
class Anchor:
    wall: datetime
    boot_id: str
    monotonic: float


class SystemClock:
    """The real clock. Tests pass their own object with the same three methods."""

    _boot_id = _read_boot_id()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def boot_id(self) -> str:
        return self._boot_id

    def anchor(self) -> Anchor:
        return Anchor(self.now(), self.boot_id(), self.monotonic())


def clock_plausible(t: datetime) -> bool:
    return t >= EARLIEST_PLAUSIBLE
