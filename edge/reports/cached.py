"""The report and the worklist the pages show, computed once per state of the records they read.

A doctor opens the worklist and the month's report many times between two saves; each computation
walks every managed patient (5,000 residents: ~4,500 managements). The store keeps a random token
that every insert, update or delete of a follow-up, a management or a resident replaces in the same
transaction (report_inputs, schema_followup 531). A result is kept with the token read before it
was computed, and given again only while the token is unchanged, so a save, a correction, a late
(back-dated) record, a void, an ended management or a corrected birth date is in the very next
page. A result computed while a change commits is kept under the older token and never served.
The readings by source are added fresh each time (counted per hour, schema_followup 530): readings
arrive all day and are not report inputs of the token.

老年人健康管理率 (edge/reports/elderly.py) is kept the same way, per year and day: health checks are
report inputs too (schema_healthcheck 610).

The worklist is kept per day (it depends on today); a report per period. At most KEEP results are
held (a report holds its residents' ids: about a megabyte on the bench's village).

After a save, the current period's report and today's worklist are not computed again from every
patient: their per-resident parts are kept (edge/reports/patched.py) and only the residents changed
since are read again. A past period (a follow-up dated later in its year) and a worklist with a
follow-up dated after today take the full path above.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date
from typing import Callable, TypeVar

from . import elderly as elderly_mod, kpi, patched, source
from .population import Period
from .worklist import Worklist

KEEP = 4
T = TypeVar("T")

_kept: OrderedDict[tuple, tuple[bytes, object]] = OrderedDict()
_lock = threading.Lock()
# how each result was had: kept, computed (in full), patched (after a save), parts computed (the
# per-resident parts from scratch): for tests and bench/web_followup.py
counts = {"kept": 0, "computed": 0, "patched": 0, "parts computed": 0}


def token(store) -> bytes:
    return store.scalar("SELECT token FROM report_inputs WHERE id = 1")


def _kept_or(key: tuple, tok: bytes, compute: Callable[[], T]) -> T:
    with _lock:
        hit = _kept.get(key)
        if hit is not None and hit[0] == tok:
            _kept.move_to_end(key)
            counts["kept"] += 1
            return hit[1]
    value = compute()
    with _lock:
        counts["computed"] += 1
        _kept[key] = (tok, value)
        _kept.move_to_end(key)
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return value


def _patched(key: tuple, store, make: Callable[[], patched.Kept]):
    with _lock:
        kept = _kept.get(key)
        if kept is None:
            kept = _kept[key] = (b"", make())
        _kept.move_to_end(key)
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    value, how = kept[1].current(store)
    with _lock:
        counts[how] += 1
    return value


def report(store, period: Period, tz: str) -> kpi.Report:
    """What source.report gives (a new Report each call: callers may change theirs)."""
    if source._later_in_year(store, period):
        r = _kept_or(("report", period), token(store), lambda: source.followup_report(store, period))
    else:
        r = _patched(("report parts", period), store, lambda: patched.ReportParts(period))
    return kpi.Report(period, dict(r.indicators), {d: dict(c) for d, c in r.followups.items()},
                      source.readings_by_source(store, period, tz))


def worklist(store, today: date) -> Worklist:
    """What source.build_worklist gives (new lists each call)."""
    if store.scalar(f"SELECT 1 FROM followups WHERE {source.LIVE} AND visit_date > ? LIMIT 1", (today.isoformat(),)):
        wl = _kept_or(("worklist", today), token(store), lambda: source.build_worklist(store, today))
    else:
        wl = _patched(("worklist parts", today), store, lambda: patched.WorklistParts(today))
    return Worklist(wl.today, list(wl.urgent), list(wl.overdue), list(wl.due), list(wl.not_seen))


def elderly(store, year: int, *, until: date | None = None) -> elderly_mod.Elderly:
    """老年人健康管理率 of the year (to `until`): kept while the token is the same. Health checks and
    residents are report inputs (schema_healthcheck 610, schema_followup 531), so a save is in the
    next page. The result is frozen (tuples), so it is shared, not copied."""
    return _kept_or(("elderly", year, until), token(store), lambda: elderly_mod.load(store, year, until=until))


def forget() -> None:
    with _lock:
        _kept.clear()
