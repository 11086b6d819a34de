"""Time as this box knows it: wall clock (untrusted, no RTC), boot id and monotonic time.

A Raspberry Pi boots in 1970 or at its last saved time until NTP or the hub tells it better, and a
wrong saved time or a bad time source can just as well put it years ahead (2038). Every reading
keeps (boot_id, monotonic) so its true time can be recomputed once the hub's signed time is known
on that boot (docs/architecture.md, rule 3; docs/time.md says what is judged and why).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from .reading import parse_iso

# Earliest wall-clock time this software can really be running at: anything before means the
# clock was never set since boot.
EARLIEST_PLAUSIBLE = datetime(2025, 1, 1, tzinfo=timezone.utc)
# How far the box clock may stray from the hub's signed time (carried forward on this boot's
# monotonic clock) before its times are suspect: a Pi without NTP drifts seconds a day.
TOLERANCE = timedelta(minutes=5)
# Without a hub time on this boot: how far past the latest time known to have passed (the newest
# signed hub time of any boot) the clock may be. A box can be offline for months, not for years.
MAX_AHEAD = timedelta(days=366)
# A box that never had a signed hub time knows only that it is not before 2025 and, coarsely, not
# after this (raise it with a release before then; docs/time.md).
UNSYNCED_CEILING = datetime(2030, 1, 1, tzinfo=timezone.utc)
DEFAULT_ZONE = "Asia/Shanghai"
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
    """Not before this software existed (the coarse check when nothing better is known)."""
    return t >= EARLIEST_PLAUSIBLE


@dataclass(frozen=True)
class KnownTime:
    """What the box knows about the time at one anchor: its wall clock, the hub's signed time
    carried forward on this boot's monotonic clock (None before the first signed answer of this
    boot), and the latest time known to have passed."""

    wall: datetime
    true: datetime | None
    latest: datetime | None     # the newest signed hub time of any boot; None: never had one

    @property
    def best(self) -> datetime:
        return self.true or self.wall

    @property
    def ceiling(self) -> datetime:
        return self.latest + MAX_AHEAD if self.latest else UNSYNCED_CEILING

    def wall_ok(self) -> bool:
        if self.true is not None:
            return abs(self.wall - self.true) <= TOLERANCE
        floor = max(EARLIEST_PLAUSIBLE, self.latest - TOLERANCE) if self.latest else EARLIEST_PLAUSIBLE
        return floor <= self.wall <= self.ceiling

    def device_time_ok(self, t: datetime) -> bool:
        """A device's own time is believed unless before 2025 or ahead of the best known time."""
        if t < EARLIEST_PLAUSIBLE:
            return False
        if self.true is not None:
            return t <= self.true + TOLERANCE
        return t <= (self.wall if self.wall_ok() else self.ceiling) + TOLERANCE


def known_time(conn, anchor: Anchor) -> KnownTime:
    """Judge `anchor` against the hub's signed times kept in sync_time_anchors (edge.core schema)."""
    row = conn.execute("SELECT monotonic, hub_time FROM sync_time_anchors WHERE boot_id = ?"
                       " ORDER BY rtt_s, monotonic DESC LIMIT 1", (anchor.boot_id,)).fetchone()
    true = None
    if row is not None:
        true = parse_iso(row[1]) + timedelta(seconds=anchor.monotonic - row[0])
    newest = conn.execute("SELECT hub_time FROM sync_time_anchors ORDER BY rowid DESC LIMIT 1").fetchone()
    return KnownTime(anchor.wall, true, parse_iso(newest[0]) if newest else None)


def best_now(conn, clock) -> datetime:
    """The best time this box knows now: the hub's, carried on this boot's clock, else the wall's."""
    return known_time(conn, clock.anchor()).best


def local_date(at: datetime, zone: str = DEFAULT_ZONE) -> date:
    """The calendar date at `at` in the clinic's time zone (a Beijing morning is still its day)."""
    return at.astimezone(ZoneInfo(zone)).date()


def start_of_day(at: datetime, zone: str = DEFAULT_ZONE) -> datetime:
    local = at.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def clinic_today(store, clock, zone: str = DEFAULT_ZONE) -> date:
    """Today in the clinic's time zone, on the best time known: the one place pages, forms, rules
    and reports take "today" from (edge.core.node.Node.today for a node)."""
    return local_date(best_now(store.conn, clock), zone)
