"""The standard's rules as pure functions: control targets, classification, urgent referral,
next visit and BMI. Every rule only *suggests*; the doctor may override each one on the form.

Sources (docs/domain.md §1.2): 国家基本公共卫生服务规范（第三版） 高血压/2型糖尿病患者健康管理服务规范.
- Controlled BP: SBP < 140 and DBP < 90; for patients aged 65 and over SBP < 150 and DBP < 90
  (docs/domain.md marks the age split [U] for the national text; it is what deployed KPI code does,
  hgc11207141/qos-lujia-support PublicHealthManagementMapper.xml).
- Controlled glucose: fasting glucose < 7.0 mmol/L and above the hypoglycaemia line: a value that
  calls for urgent referral (<= 3.9 mmol/L) is never 控制满意 (docs/followup.md, "Glucose and meals").
- Urgent referral: SBP >= 180 and/or DBP >= 110; diabetes also glucose >= 16.7 or <= 3.9 mmol/L,
  heart rate > 100/min, temperature > 39 °C, and the danger signs listed in fields.DANGER_SIGNS_*.
- Next visit: controlled -> routine; first uncontrolled (or adverse reaction) -> within 2 weeks;
  two uncontrolled in a row, or a complication -> referral, followed up within 2 weeks.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Mapping

from .fields import (CLASS_ADVERSE, CLASS_COMPLICATION, CLASS_CONTROLLED, CLASS_UNCONTROLLED,
                     DANGER_SIGNS_DIABETES, DANGER_SIGNS_HYPERTENSION, FORM_DIABETES, STEP_REFERRAL,
                     STEP_ROUTINE, STEP_TWO_WEEKS, STEP_URGENT)

ELDERLY_AGE = 65
SBP_TARGET, SBP_TARGET_ELDERLY, DBP_TARGET = 140, 150, 90
FBG_TARGET = 7.0
URGENT_SBP, URGENT_DBP = 180, 110
URGENT_GLUCOSE_HIGH, URGENT_GLUCOSE_LOW = 16.7, 3.9
URGENT_HEART_RATE, URGENT_TEMPERATURE = 100, 39.0
REVISIT_DAYS = 14
ROUTINE_MONTHS = 3
UNCONTROLLED = (CLASS_UNCONTROLLED, CLASS_ADVERSE)


def age_on(birth: date | None, day: date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def bp_target(age: int | None) -> tuple[int, int]:
    """(SBP, DBP) a patient must stay below. Unknown age: the stricter general target."""
    return (SBP_TARGET_ELDERLY if age is not None and age >= ELDERLY_AGE else SBP_TARGET), DBP_TARGET


def bp_controlled(sbp: float | None, dbp: float | None, age: int | None) -> bool | None:
    if sbp is None or dbp is None:
        return None
    s, d = bp_target(age)
    return sbp < s and dbp < d


def glucose_controlled(fbg: float | None) -> bool | None:
    return None if fbg is None else URGENT_GLUCOSE_LOW < fbg < FBG_TARGET


def bmi(weight_kg: float | None, height_cm: float | None) -> float | None:
    if not weight_kg or not height_cm:
        return None
    return round(weight_kg / (height_cm / 100) ** 2, 1)


def suggest_classification(form: str, values: Mapping[str, Any], age: int | None) -> str | None:
    """此次随访分类 suggested from the measurements; None when nothing was measured."""
    if values.get("adverse_reaction") == "2":
        return CLASS_ADVERSE
    if form == FORM_DIABETES:
        ok = glucose_controlled(values.get("fbg"))
    else:
        ok = bp_controlled(values.get("sbp"), values.get("dbp"), age)
    if ok is None:
        return None
    return CLASS_CONTROLLED if ok else CLASS_UNCONTROLLED


@dataclass(frozen=True)
class Alert:
    code: str
    zh: str
    en: str

    def text(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en


def _num(values: Mapping[str, Any], name: str) -> float | None:
    v = values.get(name)
    return None if v in (None, "") else float(v)


def urgent_alerts(form: str, values: Mapping[str, Any]) -> list[Alert]:
    """Why this patient needs urgent referral (紧急转诊); empty when nothing calls for it.
    `values` may also carry `temperature` (°C) from a device reading of the day."""
    alerts: list[Alert] = []
    sbp, dbp = _num(values, "sbp"), _num(values, "dbp")
    if (sbp is not None and sbp >= URGENT_SBP) or (dbp is not None and dbp >= URGENT_DBP):
        alerts.append(Alert("bp", f"血压 {sbp:g}/{dbp:g} mmHg:收缩压≥180和/或舒张压≥110" if dbp is not None
                            and sbp is not None else "收缩压≥180和/或舒张压≥110 mmHg",
                            "SBP >= 180 and/or DBP >= 110 mmHg"))
    if form == FORM_DIABETES:
        fbg = _num(values, "fbg")
        if fbg is not None and fbg >= URGENT_GLUCOSE_HIGH:
            alerts.append(Alert("glucose_high", f"血糖 {fbg:g} mmol/L ≥16.7", f"glucose {fbg:g} mmol/L >= 16.7"))
        if fbg is not None and fbg <= URGENT_GLUCOSE_LOW:
            alerts.append(Alert("glucose_low", f"血糖 {fbg:g} mmol/L ≤3.9", f"glucose {fbg:g} mmol/L <= 3.9"))
        hr = _num(values, "heart_rate")
        if hr is not None and hr > URGENT_HEART_RATE:
            alerts.append(Alert("heart_rate", f"心率 {hr:g} 次/分 >100", f"heart rate {hr:g}/min > 100"))
        temp = _num(values, "temperature")
        if temp is not None and temp > URGENT_TEMPERATURE:
            alerts.append(Alert("temperature", f"体温 {temp:g}℃ >39", f"temperature {temp:g} °C > 39"))
    signs = DANGER_SIGNS_DIABETES if form == FORM_DIABETES else DANGER_SIGNS_HYPERTENSION
    picked = set(values.get("danger_signs") or ())
    alerts += [Alert("sign:" + c, zh, en) for c, zh, en in signs if c in picked]
    return alerts


def add_months(day: date, months: int) -> date:
    m = day.month - 1 + months
    y, m = day.year + m // 12, m % 12 + 1
    return date(y, m, min(day.day, calendar.monthrange(y, m)[1]))


@dataclass(frozen=True)
class NextVisit:
    step: str                   # fields.NEXT_STEPS code
    date: date
    refer: bool


def propose_next(visit_date: date, classification: str | None, previous: str | None,
                 urgent: bool) -> NextVisit:
    """The next step and date. `previous` is the classification of the patient's last visit on
    the same form before this one (None if this is the first)."""
    if urgent:
        return NextVisit(STEP_URGENT, visit_date + timedelta(days=REVISIT_DAYS), True)
    if classification == CLASS_COMPLICATION or (classification in UNCONTROLLED and previous in UNCONTROLLED):
        return NextVisit(STEP_REFERRAL, visit_date + timedelta(days=REVISIT_DAYS), True)
    if classification in UNCONTROLLED:
        return NextVisit(STEP_TWO_WEEKS, visit_date + timedelta(days=REVISIT_DAYS), False)
    return NextVisit(STEP_ROUTINE, add_months(visit_date, ROUTINE_MONTHS), False)


def suggestions(form: str, values: Mapping[str, Any], *, age: int | None, previous: str | None,
                visit_date: date) -> dict[str, Any]:
    """Everything the rules would fill in: classification, next step, next date, BMI, alerts."""
    cls = suggest_classification(form, values, age)
    alerts = urgent_alerts(form, values)
    nxt = propose_next(visit_date, cls, previous, bool(alerts))
    out: dict[str, Any] = {"classification": cls, "next_step": nxt.step,
                           "next_visit_date": nxt.date.isoformat(), "refer": nxt.refer, "alerts": alerts}
    b = bmi(_num(values, "weight"), _num(values, "height"))
    if b is not None:
        out["bmi"] = b
    return out
