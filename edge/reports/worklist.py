"""The doctor's worklist: who needs a follow-up now.

For each managed patient and disease, from the follow-ups on record (pure; `today` passed in):
- urgent: the last follow-up ended in an urgent referral (紧急转诊) and nobody has seen the patient
  on that form since; the standard asks for an active follow-up within 2 weeks.
- overdue: the proposed next visit date of the last follow-up has passed (or, with no follow-up on
  record at all, management began before this quarter).
- due: no face-to-face follow-up yet this quarter (4 a year means one a quarter), or the proposed
  next visit falls within this quarter.
- not seen this year: no follow-up of any mode since 1 January.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable, NamedTuple

from edge.core.followup.fields import STEP_URGENT
from edge.core.followup.rules import REVISIT_DAYS
from .population import DISEASES, Patient, Visit, quarter_of


@dataclass(frozen=True)
class Item:
    resident_id: str
    name: str
    disease: str
    last_visit: date | None
    due: date | None
    days_overdue: int = 0


@dataclass
class Worklist:
    today: date
    urgent: list[Item] = field(default_factory=list)
    overdue: list[Item] = field(default_factory=list)
    due: list[Item] = field(default_factory=list)
    not_seen: list[Item] = field(default_factory=list)

    def sections(self) -> list[tuple[str, list[Item]]]:
        return [("urgent", self.urgent), ("overdue", self.overdue), ("due", self.due),
                ("not_seen", self.not_seen)]


SECTION_LABELS = {
    "urgent": ("未结紧急转诊", "Open urgent referrals"),
    "overdue": ("随访逾期", "Overdue follow-ups"),
    "due": ("本季度应随访", "Due this quarter"),
    "not_seen": ("今年未随访", "Not seen this year"),
}


@dataclass(frozen=True)
class Standing:
    """One patient's standing on one form, as of today."""
    last: Visit | None            # the latest follow-up on or before today
    seen_quarter: bool            # a face-to-face follow-up since the quarter began
    seen_year: bool               # any follow-up since 1 January


def summarise(visits: Iterable[Visit], today: date) -> dict[tuple[str, str], Standing]:
    q_start, year_start = quarter_of(today).start, date(today.year, 1, 1)
    out: dict[tuple[str, str], Standing] = {}
    for v in visits:
        if v.visit_date > today:
            continue
        key = (v.resident_id, v.form)
        s = out.get(key, Standing(None, False, False))
        last = v if s.last is None or (v.visit_date, v.id) > (s.last.visit_date, s.last.id) else s.last
        out[key] = Standing(last, s.seen_quarter or (v.face_to_face and v.visit_date >= q_start),
                            s.seen_year or v.visit_date >= year_start)
    return out


def build(patients: Iterable[Patient], visits: Iterable[Visit], today: date) -> Worklist:
    return from_standings(patients, summarise(visits, today), today)


def from_standings(patients: Iterable[Patient], standings: dict[tuple[str, str], Standing],
                   today: date) -> Worklist:
    none = Standing(None, False, False)
    rows = []
    for p in sorted(patients, key=lambda p: p.resident_id):
        forms = [(d, p.managed_since(d), s.last, s.seen_quarter)
                 for d in DISEASES if p.managed_on(d, today) for s in (standings.get((p.resident_id, d), none),)]
        if forms:
            rows.append((p.resident_id, p.name, forms,
                         any(s.seen_year for s in standings_of(p.resident_id, standings))))
    return from_managed(rows, today)


class Last(NamedTuple):
    """What the worklist reads of a patient's last follow-up on a form (a Visit has these too)."""
    visit_date: date
    next_step: str | None
    next_visit_date: date | None


# One patient managed today: (resident id, name, [(disease, management start, last follow-up or
# None, seen face to face this quarter)] in DISEASES order, seen this year on any form, managed or
# not). Plain tuples: the store builds ~5,000 of them per worklist (edge/reports/source.py).
Managed = tuple[str, str, list[tuple[str, date, "Visit | Last | None", bool]], bool]


def from_managed(rows: Iterable[Managed], today: date) -> Worklist:
    """The worklist from the patients managed today, in resident id order."""
    return ordered(placed(rows, today))


def placed(rows: Iterable[Managed], today: date) -> Worklist:
    """Each patient's items in the sections, in the order of `rows` (not yet ordered)."""
    q = quarter_of(today)
    wl = Worklist(today)
    for rid, name, forms, seen_year in rows:
        for d, since, last, seen_quarter in forms:
            _place(wl, rid, name, d, since, last, seen_quarter, q)
        if not seen_year:
            lv = max((f[2].visit_date for f in forms if f[2]), default=None)
            wl.not_seen.append(Item(rid, name, ",".join(f[0] for f in forms), lv, None))
    return wl


def ordered(wl: Worklist) -> Worklist:
    """The most overdue first, the oldest urgent referral first (stable: ties keep resident order)."""
    wl.overdue.sort(key=lambda i: -i.days_overdue)
    wl.urgent.sort(key=lambda i: i.due or wl.today)
    return wl


def standings_of(resident_id: str, standings: dict[tuple[str, str], Standing]) -> list[Standing]:
    return [standings[(resident_id, d)] for d in DISEASES if (resident_id, d) in standings]


def _place(wl: Worklist, rid: str, name: str, disease: str, since: date, last: Visit | Last | None, seen_quarter: bool,
           q) -> None:
    today = wl.today
    lv = last.visit_date if last else None
    if last and last.next_step == STEP_URGENT:
        wl.urgent.append(Item(rid, name, disease, lv, lv + timedelta(days=REVISIT_DAYS),
                              max(0, (today - lv).days - REVISIT_DAYS)))
        return
    due = last.next_visit_date if last else None
    if due is None and last is None and since < q.start:
        due = q.start
    if due is not None and due < today:
        wl.overdue.append(Item(rid, name, disease, lv, due, (today - due).days))
    elif not seen_quarter or (due is not None and due <= q.end):
        wl.due.append(Item(rid, name, disease, lv, due or q.end))
