"""The county view: each clinic's own monthly and quarterly reports (the `report` records a node
sends, edge/reports/archive.py), per township and for the county, with who has not reported.

A figure above a clinic is a sum of the clinics' figures: counts add up, and a rate is the sum of
the numerators over the sum of the denominators, never an average of the clinics' rates
(docs/county.md). A clinic that wrote its report for a period twice counts once, with the one the
hub received last. A report whose figures do not add up (a numerator above its denominator, a
negative count, a missing indicator) is left out and shown as unreadable, never summed.
"""
from __future__ import annotations

import json
import logging
import re
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa

from edge.core.errors import ValidationError
from .storage import HubStore, nodes, now_iso, places, records

log = logging.getLogger(__name__)

COUNTS = ("managed_hypertension", "managed_diabetes")
RATES = ("standard_hypertension", "control_hypertension", "standard_diabetes", "control_diabetes")
LABELS = {   # the node's report labels (edge/reports/kpi.py), shortened for a table column
    "managed_hypertension": ("高血压管理人数", "Hypertension patients managed"),
    "standard_hypertension": ("高血压规范管理率", "Hypertension standard-management rate"),
    "control_hypertension": ("血压控制率", "BP control rate"),
    "managed_diabetes": ("糖尿病管理人数", "Diabetes patients managed"),
    "standard_diabetes": ("糖尿病规范管理率", "Diabetes standard-management rate"),
    "control_diabetes": ("血糖控制率", "Glucose control rate"),
}
ORDER = ("managed_hypertension", "standard_hypertension", "control_hypertension",
         "managed_diabetes", "standard_diabetes", "control_diabetes")
PERIOD = re.compile(r"(\d{4})-(?:Q([1-4])|(0[1-9]|1[0-2]))")
NO_TOWNSHIP = "未设乡镇 no township set"
TOWNSHIP = re.compile(r"\S(.{0,62}\S)?")
DIVISION = re.compile(r"\d{12}")          # GB/T 2260 county (6) + township (3) + village (3)
TOWNSHIP_CODE_LABEL = "乡镇 "             # a township county IT has not named yet: "乡镇 110105001"

# one figure: (numerator, denominator); a count has denominator None
Figures = dict[str, tuple[int, "int | None"]]


class BadReport(ValueError):
    """A report record whose figures the county cannot sum; the reason says which."""


def period_kind(label: str) -> str:
    m = PERIOD.fullmatch(label or "")
    if not m:
        raise ValidationError(f"a period is YYYY-MM or YYYY-Qn, not {label!r}", field="period")
    return "quarter" if m.group(2) else "month"


def _whole(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise BadReport(f"{what} is {v!r}, not a whole number >= 0")
    return v


def figures_of(payload: dict) -> Figures:
    """The six figures of one report payload, checked; BadReport says what is wrong."""
    ind = payload.get("indicators")
    if not isinstance(ind, dict):
        raise BadReport("the report has no indicators")
    out: Figures = {}
    for key in COUNTS + RATES:
        i = ind.get(key)
        if not isinstance(i, dict):
            raise BadReport(f"the indicator {key} is missing")
        num = _whole(i.get("numerator"), f"{key} numerator")
        den = None if key in COUNTS else _whole(i.get("denominator"), f"{key} denominator")
        if den is not None and num > den:
            raise BadReport(f"{key}: numerator {num} is above the denominator {den}")
        out[key] = (num, den)
    for disease in ("hypertension", "diabetes"):   # a rate's denominator is the managed patients
        for key in (f"standard_{disease}", f"control_{disease}"):
            if out[key][1] != out[f"managed_{disease}"][0]:
                raise BadReport(f"{key}: denominator {out[key][1]} is not the managed patients "
                                f"{out[f'managed_{disease}'][0]}")
    return out


def add_up(many: Iterable[Figures]) -> Figures:
    """Counts summed; rates as (sum of numerators, sum of denominators)."""
    total: Figures = {k: (0, None if k in COUNTS else 0) for k in ORDER}
    for f in many:
        for k, (num, den) in f.items():
            n0, d0 = total[k]
            total[k] = (n0 + num, None if den is None else d0 + den)
    return total


def rate(fig: tuple[int, int | None]) -> float | None:
    num, den = fig
    return None if not den else num / den


@dataclass(frozen=True)
class Place:
    node: str
    township: str
    clinic: str


@dataclass(frozen=True)
class ClinicReport:
    node: str
    period: str
    record_id: str
    received_at: str
    figures: Figures


@dataclass
class Row:
    level: str                      # clinic | township | county
    township: str
    name: str                       # the clinic's name, the township's, or the county's
    node: str = ""
    figures: Figures | None = None  # None: this clinic has no usable report for the period
    problem: str = ""               # why not (not reported, or the report's fault)
    reported: int = 0               # clinics summed into this row
    clinics: int = 0                # clinics in this row


@dataclass
class CountyTable:
    period: str
    rows: list[Row] = field(default_factory=list)

    @property
    def county(self) -> Row:
        return self.rows[-1]

    @property
    def missing(self) -> list[Row]:
        return [r for r in self.rows if r.level == "clinic" and r.figures is None]


def all_places(store: HubStore) -> dict[str, Place]:
    """Every node the hub knows, with its township: the one county IT set (it always wins), else the
    township of the division code the node sends in its hello (docs/county.md, "Townships"), named
    as county IT named it for another clinic with the same 9-digit township code, else by the code;
    NO_TOWNSHIP if neither."""
    with store.engine.connect() as c:
        set_ = {r.node: r for r in c.execute(sa.select(places))}
        rows = c.execute(sa.select(nodes.c.name, nodes.c.status).order_by(nodes.c.name)).all()
    codes = {name: division_code(status) for name, status in rows}
    named: dict[str, str] = {}
    for n in sorted(set_):
        if codes.get(n):
            named.setdefault(codes[n][:9], set_[n].township)
    out = {}
    for n, _status in rows:
        if n in set_:
            town = set_[n].township
        elif codes[n]:
            town = named.get(codes[n][:9]) or f"{TOWNSHIP_CODE_LABEL}{codes[n][:9]}"
        else:
            town = NO_TOWNSHIP
        out[n] = Place(n, town, (set_[n].clinic if n in set_ else None) or n)
    return out


def division_code(status: Any) -> str:
    """The 12-digit village division code a node's stored hello carries, or "" (none, or malformed)."""
    try:
        doc = json.loads(status or "{}")
    except (ValueError, TypeError, RecursionError):
        return ""
    code = doc.get("division_code") if isinstance(doc, dict) else None
    return code if isinstance(code, str) and DIVISION.fullmatch(code) else ""


def set_place(store: HubStore, node: str, township: str, clinic: str | None, *, actor: str,
              now: datetime) -> Place:
    """Set a node's township; `clinic` None keeps its display name, "" clears it (the node name)."""
    township = re.sub(r"\s+", " ", township or "").strip()
    keep = clinic is None
    clinic = re.sub(r"\s+", " ", clinic or "").strip() or None
    if not TOWNSHIP.fullmatch(township):
        raise ValidationError("a township name has 1-64 characters", field="township")
    if clinic is not None and len(clinic) > 128:
        raise ValidationError("a clinic name has at most 128 characters", field="clinic")
    if store.node(node) is None:
        raise ValidationError(f"no node named {node} on this hub", field="node")
    values = {"township": township, "updated_at": now_iso(now), "updated_by": actor}
    if not keep:
        values["clinic"] = clinic
    with store.begin() as c:
        if c.execute(places.update().where(places.c.node == node).values(**values)).rowcount != 1:
            c.execute(places.insert().values(node=node, **values))
        clinic = c.execute(sa.select(places.c.clinic).where(places.c.node == node)).scalar()
    return Place(node, township, clinic or node)


Reports = tuple[dict[tuple[str, str], ClinicReport], list[tuple[str, str, str]]]
_kept: "weakref.WeakKeyDictionary[HubStore, tuple[int, Reports]]" = weakref.WeakKeyDictionary()
_REPORTS_HELD = sa.select(sa.func.count()).select_from(records).where(records.c.kind == "report")


def clinic_reports(store: HubStore) -> Reports:
    """((node, period) -> the report received last, [(node, record id, why unreadable)]).

    Parsing every report took most of a county page's time (bench/county.py), so the parsed reports
    are kept per store until a new report arrives: hub_records only grows (a record is inserted,
    never changed or deleted, docs/county.md "Pages and files"), so the number of report records says whether any came
    since, in one index count, whichever worker process stored it. The count is read before the
    reports: one that lands in between is in what is kept, and the next view reads them again.
    The result is shared between requests: read it, do not change it."""
    with store.read() as c:
        held = c.execute(_REPORTS_HELD).scalar_one()
    kept = _kept.get(store)
    if kept is not None and kept[0] == held:
        return kept[1]
    reports = _parse_reports(store)
    _kept[store] = (held, reports)
    return reports


def forget_reports(store: HubStore | None = None) -> None:
    """Drop the kept reports (of one store, or all): the next view parses them again (bench/county.py)."""
    if store is None:
        _kept.clear()
    else:
        _kept.pop(store, None)


def _parse_reports(store: HubStore) -> Reports:
    q = (sa.select(records.c.node, records.c.record_id, records.c.payload, records.c.received_at)
         .where(records.c.kind == "report").order_by(records.c.received_at, records.c.record_id))
    found: dict[tuple[str, str], ClinicReport] = {}
    bad: dict[tuple[str, str], tuple[str, str, str]] = {}
    with store.engine.connect() as c:
        for node, rid, payload, at in c.execute(q):
            try:
                doc = json.loads(payload)
                label = doc.get("period") if isinstance(doc, dict) else None
                if doc.get("kind") == "year":       # the annual report: the county view shows months and quarters
                    continue
                period_kind(label)
            except (ValueError, ValidationError) as e:
                log.warning("county view: report %s of %s has no usable period: %s", rid, node, e)
                continue
            try:
                found[(node, label)] = ClinicReport(node, label, rid, at, figures_of(doc))
                bad.pop((node, label), None)
            except BadReport as e:
                log.warning("county view: report %s of %s for %s left out: %s", rid, node, label, e)
                found.pop((node, label), None)
                bad[(node, label)] = (node, rid, str(e))
    return found, list(bad.values())


def periods(found: Iterable[tuple[str, str]], kind: str | None = None) -> list[str]:
    """The periods any clinic reported for, oldest first (of one kind if given)."""
    labels = {p for _n, p in found}
    return sorted(p for p in labels if kind is None or period_kind(p) == kind)



def table(store: HubStore, period: str, reports: Reports | None = None) -> CountyTable:
    """One row per clinic, a subtotal per township, the county last (`reports`: clinic_reports(),
    when the caller has read them already)."""
    period_kind(period)
    found, bad = reports or clinic_reports(store)
    unreadable = {(n, period): why for n, _rid, why in bad}
    return build(period, all_places(store), found, unreadable)


def build(period: str, where: dict[str, Place], found: dict[tuple[str, str], ClinicReport],
          unreadable: dict[tuple[str, str], str]) -> CountyTable:
    out = CountyTable(period)
    townships = sorted({p.township for p in where.values()}, key=lambda t: (t == NO_TOWNSHIP, t))
    every: list[Figures] = []
    for town in townships:
        mine = [Row("clinic", town, p.clinic, p.node) for p in sorted(where.values(), key=lambda p: p.clinic)
                if p.township == town]
        for r in mine:
            rep = found.get((r.node, period))
            r.clinics = 1
            if rep is None:
                r.problem = ("报告无法读取 report unreadable: " + unreadable[(r.node, period)]
                             if (r.node, period) in unreadable else "未上报 not reported")
            else:
                r.figures, r.reported = rep.figures, 1
        got = [r.figures for r in mine if r.figures is not None]
        every += got
        out.rows += mine
        out.rows.append(Row("township", town, town, figures=add_up(got), reported=len(got), clinics=len(mine)))
    out.rows.append(Row("county", "", "全县 county", figures=add_up(every), reported=len(every),
                        clinics=len(where)))
    return out


def trend(store: HubStore, kind: str, *, node: str | None = None, township: str | None = None,
          last: int = 12, reports: Reports | None = None) -> list[Row]:
    """The county's (or one township's, or one clinic's) figures over its last `last` periods of
    `kind`, oldest first; each row's `reported` says how many clinics it sums."""
    found, _bad = reports or clinic_reports(store)
    where = all_places(store)
    chosen = [p for p in where.values()
              if (node is None or p.node == node) and (township is None or p.township == township)]
    out = []
    for label in periods(found, kind)[-last:]:
        got = [found[(p.node, label)].figures for p in chosen if (p.node, label) in found]
        out.append(Row("trend", township or "", label, node or "", add_up(got), reported=len(got),
                       clinics=len(chosen)))
    return out
