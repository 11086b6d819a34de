"""老年人健康管理: the worklist of residents 65+ not checked this year and 老年人健康管理率.

Definitions (each shown on the page; docs/health-check.md):
- The 65+ population (辖区内65岁及以上常住居民): the clinic's own resident register, i.e. every
  resident not voided whose birth date makes them 65 or over on 31 December of the year, so a
  resident turning 65 during the year counts for that whole year. Residents with no birth date
  cannot be placed and are counted apart (`no_birth_date`) so the figure is not silently low.
- Managed (年内接受健康管理人数): a resident of that population with a health check (not voided)
  dated in the year.
- Share of complete 体检表: complete checks (edge.core.healthcheck.records.is_complete) / checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable, NamedTuple

ELDERLY_AGE = 65


class Resident(NamedTuple):
    id: str
    name: str
    birth_date: date | None


class Check(NamedTuple):
    resident_id: str
    check_date: date
    complete: bool


@dataclass(frozen=True)
class Elderly:
    year: int
    population: tuple[str, ...]             # resident ids 65+ by 31 December
    managed: tuple[str, ...]                # of those, checked in the year
    checks: int
    complete: int
    not_checked: tuple[Resident, ...]       # the worklist, oldest first
    no_birth_date: int

    @property
    def rate(self) -> float | None:
        return len(self.managed) / len(self.population) if self.population else None

    @property
    def complete_share(self) -> float | None:
        return self.complete / self.checks if self.checks else None


def in_population(birth: date | None, year: int) -> bool:
    """65 or over on 31 December of `year` (turning 65 in the year counts)."""
    return birth is not None and year - birth.year >= ELDERLY_AGE


def compute(residents: Iterable[Resident], checks: Iterable[Check], year: int, *, until: date | None = None) -> Elderly:
    """`until`: count checks up to this day only (a month's or quarter's report: the year to date)."""
    residents = list(residents)
    population = [r for r in residents if in_population(r.birth_date, year)]
    ids = {r.id for r in population}
    done = [c for c in checks if c.check_date.year == year and c.resident_id in ids
            and (until is None or c.check_date <= until)]
    checked = {c.resident_id for c in done}
    waiting = sorted((r for r in population if r.id not in checked), key=lambda r: (r.birth_date, r.id))
    return Elderly(year, tuple(sorted(ids)), tuple(sorted(checked)), len(done), sum(c.complete for c in done),
                   tuple(waiting), sum(r.birth_date is None for r in residents))


def load(store, year: int, *, until: date | None = None) -> Elderly:
    """The figures from the node's store (residents register and saved health checks)."""
    residents = [Resident(r["id"], r["name"], date.fromisoformat(r["birth_date"]) if r["birth_date"] else None)
                 for r in store.query("SELECT id, name, birth_date FROM residents WHERE voided_at IS NULL")]
    checks = [Check(r["resident_id"], date.fromisoformat(r["check_date"]), bool(r["complete"]))
              for r in store.query("SELECT resident_id, check_date, complete FROM health_checks"
                                   " WHERE voided_at IS NULL AND year = ?", (year,))]
    return compute(residents, checks, year, until=until)
