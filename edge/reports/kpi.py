"""The clinic's monthly/quarterly/annual report: KPIs with numerator, denominator and the residents
behind each (docs/domain.md §2; formulas from 国家基本公共卫生服务规范 第三版 工作指标).

Definitions used here (each one is shown on the report page too):
- 已管理患者 (patients under management) of a disease: management (纳入管理) began on or before
  the period's end.
- The assessment window of the rates is the year to date: 1 January of the period's year to the
  period's end (the national indicators are 年内; an annual report is the whole year).
- 规范管理率: managed patients with at least ceil(4 x m / 12) face-to-face follow-ups (门诊/家庭)
  in the window, m = months of the window from the later of 1 January and the start of management
  (4 a year, pro rata) / managed patients. [U: "按规范" is not defined numerically nationally]
- 管理人群血压控制率: managed hypertension patients whose last follow-up in the window with a BP
  had SBP < 140 and DBP < 90 (< 150/90 at 65 and over, age on that visit) / managed patients.
  No follow-up with a BP in the window (lost to follow-up) counts as not controlled.
- 管理人群血糖控制率: the same with the last fasting glucose < 7.0 mmol/L.
- 随访人次 (follow-ups done) and readings count within the period itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable

from edge.core.followup import rules
from .population import DIABETES, DISEASES, HYPERTENSION, Patient, Period, Visit

LABELS = {
    "managed_hypertension": ("高血压已管理患者数", "Hypertension patients under management"),
    "managed_diabetes": ("2型糖尿病已管理患者数", "Type 2 diabetes patients under management"),
    "managed_total": ("慢病已管理患者数(去重)", "Patients under management (distinct)"),
    "followups_hypertension": ("高血压随访人次", "Hypertension follow-ups done"),
    "followups_diabetes": ("2型糖尿病随访人次", "Type 2 diabetes follow-ups done"),
    "standard_hypertension": ("高血压患者规范管理率", "Hypertension standard-management rate"),
    "control_hypertension": ("管理人群血压控制率", "BP control rate (managed)"),
    "standard_diabetes": ("2型糖尿病患者规范管理率", "Type 2 diabetes standard-management rate"),
    "control_diabetes": ("管理人群血糖控制率", "Glucose control rate (managed)"),
    "device_bp": ("血压由设备采集的随访占比", "Follow-ups whose BP came from a device"),
}


@dataclass(frozen=True)
class Indicator:
    key: str
    numerator: tuple[str, ...]              # resident ids (or follow-up ids for device_bp)
    denominator: tuple[str, ...] | None     # None for a plain count

    @property
    def rate(self) -> float | None:
        if self.denominator is None or not self.denominator:
            return None
        return len(self.numerator) / len(self.denominator)

    @property
    def percent(self) -> str:
        r = self.rate
        return "" if r is None else f"{r * 100:.1f}%"

    def label(self, lang: str = "zh") -> str:
        zh, en = LABELS[self.key]
        return zh if lang == "zh" else en


@dataclass
class Report:
    period: Period
    indicators: dict[str, Indicator] = field(default_factory=dict)
    followups: dict[str, dict[str, int]] = field(default_factory=dict)   # disease -> mode -> n
    readings_by_source: list[dict] = field(default_factory=list)        # {source, code, count}

    def __getitem__(self, key: str) -> Indicator:
        return self.indicators[key]


def months_between(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month + 1


def required_visits(window_start: date, end: date) -> int:
    return max(1, math.ceil(4 * months_between(window_start, end) / 12))


def is_managed(p: Patient, disease: str, period: Period) -> bool:
    return p.managed_on(disease, period.end)


@dataclass(frozen=True)
class YearToDate:
    """One patient's follow-ups on one form from 1 January to the period's end."""
    face_to_face: int = 0
    last_bp: tuple[date, str, float, float] | None = None      # (visit date, id, SBP, DBP)
    last_fbg: tuple[date, str, float] | None = None             # (visit date, id, FBG)


def summarise(visits: Iterable[Visit], period: Period) -> dict[tuple[str, str], YearToDate]:
    out: dict[tuple[str, str], YearToDate] = {}
    for v in visits:
        if not period.year_start <= v.visit_date <= period.end:
            continue
        key = (v.resident_id, v.form)
        y = out.get(key, YearToDate())
        bp, fbg = y.last_bp, y.last_fbg
        if v.sbp is not None and v.dbp is not None and (bp is None or (v.visit_date, v.id) > bp[:2]):
            bp = (v.visit_date, v.id, v.sbp, v.dbp)
        if v.fbg is not None and (fbg is None or (v.visit_date, v.id) > fbg[:2]):
            fbg = (v.visit_date, v.id, v.fbg)
        out[key] = YearToDate(y.face_to_face + v.face_to_face, bp, fbg)
    return out


def _standard(since: date, y: YearToDate, period: Period, required: dict[date, int]) -> bool:
    start = max(period.year_start, since)
    if start not in required:
        required[start] = required_visits(start, period.end)
    return y.face_to_face >= required[start]


def _controlled(birth: date | None, disease: str, y: YearToDate) -> bool:
    """Judged on the last follow-up with a measurement; none (lost to follow-up) = not controlled."""
    if disease == HYPERTENSION:
        if y.last_bp is None:
            return False
        day, _id, sbp, dbp = y.last_bp
        return bool(rules.bp_controlled(sbp, dbp, rules.age_on(birth, day)))
    return y.last_fbg is not None and bool(rules.glucose_controlled(y.last_fbg[2]))


def compute(patients: Iterable[Patient], visits: Iterable[Visit], period: Period,
            readings_by_source: list[dict] | None = None) -> Report:
    visits = list(visits)
    in_period = [v for v in visits if period.start <= v.visit_date <= period.end]
    return from_summaries(patients, summarise(visits, period), in_period, period, readings_by_source)


# One managed patient on one form at the period's end: (resident id, management start, birth date,
# year to date). A plain tuple: the store builds ~5,000 of them per report (edge/reports/source.py).
Managed = tuple[str, date, "date | None", YearToDate]
# What the report reads of one follow-up inside the period:
# (resident id, form, face to face, has an SBP, BP from a device, follow-up id).
Done = tuple[str, str, bool, bool, bool, str]


def from_summaries(patients: Iterable[Patient], ytd: dict[tuple[str, str], YearToDate],
                   in_period: list[Visit], period: Period, readings_by_source: list[dict] | None = None) -> Report:
    """The report from each patient's year to date and the follow-ups inside the period."""
    patients = list(patients)
    empty = YearToDate()
    managed = {d: [(p.resident_id, p.managed_since(d), p.birth_date, ytd.get((p.resident_id, d), empty))
                   for p in patients if is_managed(p, d, period)] for d in DISEASES}
    done = [(v.resident_id, v.form, v.face_to_face, v.sbp is not None, v.bp_source == "device", v.id)
            for v in in_period]
    return from_managed(managed, done, period, readings_by_source)


def from_managed(managed: dict[str, list[Managed]], done: Iterable[Done], period: Period,
                 readings_by_source: list[dict] | None = None) -> Report:
    """The report from the patients managed at the period's end (per disease) and the follow-ups
    done inside the period."""
    return from_flags(flags(managed, period), done, period, readings_by_source)


# One managed patient on one disease at the period's end, judged: (resident id, managed to the
# standard, controlled). edge/reports/cached.py keeps these per patient between saves.
Flags = tuple[str, bool, bool]


def flags(managed: dict[str, list[Managed]], period: Period) -> dict[str, list[Flags]]:
    """Each managed patient's standard-management and control flags, per disease."""
    required: dict[date, int] = {}
    return {d: [(rid, _standard(since, y, period, required), _controlled(birth, d, y))
                for rid, since, birth, y in managed.get(d, [])] for d in DISEASES}


def from_flags(judged: dict[str, list[Flags]], done: Iterable[Done], period: Period,
               readings_by_source: list[dict] | None = None) -> Report:
    """The report from each managed patient's flags (per disease) and the follow-ups done inside
    the period."""
    report = Report(period, readings_by_source=list(readings_by_source or []))
    ind = report.indicators
    everyone: set[str] = set()
    seen: dict[str, set[str]] = {d: set() for d in DISEASES}
    counts = {d: {"total": 0, "face_to_face": 0, "phone": 0} for d in DISEASES}
    bp, device = [], []
    for rid, form, f2f, has_sbp, from_device, fid in done:
        if form in counts:
            seen[form].add(rid)
            c = counts[form]
            c["total"] += 1
            c["face_to_face" if f2f else "phone"] += 1
        if has_sbp:
            bp.append(fid)
            if from_device:
                device.append(fid)
    for disease in DISEASES:
        mine = judged.get(disease, [])
        ids = tuple(sorted(m[0] for m in mine))
        everyone.update(ids)
        ind[f"managed_{disease}"] = Indicator(f"managed_{disease}", ids, None)
        ind[f"standard_{disease}"] = Indicator(f"standard_{disease}", tuple(sorted(m[0] for m in mine if m[1])), ids)
        ind[f"control_{disease}"] = Indicator(f"control_{disease}", tuple(sorted(m[0] for m in mine if m[2])), ids)
        ind[f"followups_{disease}"] = Indicator(f"followups_{disease}", tuple(sorted(seen[disease])), None)
        report.followups[disease] = counts[disease]
    ind["managed_total"] = Indicator("managed_total", tuple(sorted(everyone)), None)
    ind["device_bp"] = Indicator("device_bp", tuple(sorted(device)), tuple(sorted(bp)))
    return report


RATES = ("standard_hypertension", "control_hypertension", "standard_diabetes", "control_diabetes")
