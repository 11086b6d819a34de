"""Server-side validation of a submitted follow-up form: typed values and one message per field.

`validate(form, raw, today=)` never raises on bad input; it returns what it could read and a
message for each field that is wrong, in Chinese (default) or English. Nothing is saved unless
`errors` is empty (the caller's job).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

from .fields import (BY_NAME, CLASS_ADVERSE, FACE_TO_FACE_MODES, FORM_DIABETES, FORM_HYPERTENSION,
                     MEDICATION_SLOTS, STEP_URGENT, Field, fields_for)

MESSAGES = {
    "required": ("请填写{label}", "{label} is required"),
    "int": ("{label}应为整数", "{label} must be a whole number"),
    "number": ("{label}应为数字", "{label} must be a number"),
    "range": ("{label}应在{low:g}–{high:g}{unit}之间", "{label} must be between {low:g} and {high:g} {unit}"),
    "date": ("{label}应为日期(年-月-日)", "{label} must be a date (YYYY-MM-DD)"),
    "choice": ("{label}的选项无效", "{label}: not one of the allowed options"),
    "too_long": ("{label}不能超过{max}个字", "{label} must be at most {max} characters"),
    "future": ("{label}不能晚于今天", "{label} cannot be after today"),
    "dbp_over_sbp": ("舒张压应低于收缩压", "diastolic BP must be below systolic BP"),
    "next_before_visit": ("下次随访日期应晚于随访日期", "the next visit must be after this visit"),
    "needs_detail": ("选择“有”时请填写{label}", "describe the {label} when answering yes"),
    "needs_side": ("请选择减弱或消失的一侧", "choose which side is weakened or absent"),
    "hba1c_date": ("填写糖化血红蛋白时请填写检查日期", "give the date of the HbA1c test"),
    "hba1c_date_after": ("检查日期不能晚于随访日期", "the test date cannot be after the visit"),
    "med_incomplete": ("请填写药物{n}的每日次数和每次剂量", "give times a day and dose for drug {n}"),
    "med_no_name": ("请填写药物{n}的名称", "give the name of drug {n}"),
    "adverse_class": ("分类为“不良反应”时药物不良反应应为“有”",
                      "classification 'adverse reaction' needs an adverse reaction recorded"),
    "none_with_others": ("“无症状”不能与其他症状同选", "'no symptoms' cannot be combined with symptoms"),
    "urgent_needs": ("紧急转诊时请填写{label}", "an urgent referral needs the {label}"),
    "outcome_needed": ("上次随访为紧急转诊：请填写是否到位", "the last visit was an urgent referral: say whether "
                       "the patient arrived"),
}


def message(key: str, lang: str = "zh", **kw: Any) -> str:
    zh, en = MESSAGES[key]
    return (zh if lang == "zh" else en).format(**kw)


@dataclass
class Validated:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "") or v == []


def _raw_list(raw: Mapping[str, Any], name: str) -> list[str]:
    getlist = getattr(raw, "getlist", None)
    v = getlist(name) if getlist else raw.get(name)
    if v is None:
        return []
    if isinstance(v, str):
        v = v.split(",")
    return [str(x).strip() for x in v if str(x).strip()]


def _number(f: Field, text: str, lang: str) -> tuple[Any, str | None]:
    label = f.label(lang)
    try:
        n = float(text)
    except ValueError:
        return None, message("int" if f.kind == "int" else "number", lang, label=label)
    if f.kind == "int":
        if n != int(n):
            return None, message("int", lang, label=label)
        n = int(n)
    else:
        n = round(n, f.decimals)
    if (f.low is not None and n < f.low) or (f.high is not None and n > f.high):
        return n, message("range", lang, label=label, low=f.low, high=f.high, unit=f.unit_label(lang))
    return n, None


def _scalar(form: str, f: Field, raw: Mapping[str, Any], lang: str) -> tuple[Any, str | None]:
    v = raw.get(f.name)
    if _blank(v):
        return None, None
    text = str(v).strip()
    label = f.label(lang)
    if f.kind in ("int", "decimal"):
        return _number(f, text, lang)
    if f.kind == "date":
        try:
            return date.fromisoformat(text).isoformat(), None
        except ValueError:
            return None, message("date", lang, label=label)
    if f.kind == "code":
        allowed = {c for c, _, _ in f.choices_for(form)}
        return (text, None) if text in allowed else (None, message("choice", lang, label=label))
    if len(text) > f.max_length:
        return text, message("too_long", lang, label=label, max=f.max_length)
    return text, None


def _codes(form: str, f: Field, raw: Mapping[str, Any], lang: str) -> tuple[list[str], str | None]:
    picked = _raw_list(raw, f.name)
    allowed = [c for c, _, _ in f.choices_for(form)]
    if any(p not in allowed for p in picked):
        return [], message("choice", lang, label=f.label(lang))
    if f.name == "symptoms" and "1" in picked and len(picked) > 1:
        return picked, message("none_with_others", lang)
    return [c for c in allowed if c in picked], None


def read_field(form: str, f: Field, raw: Mapping[str, Any], lang: str) -> tuple[Any, str | None]:
    """One field's typed value and its message (None: fine), for any form built of `Field`s
    (the health check reads its fields with this too)."""
    return _codes(form, f, raw, lang) if f.kind == "codes" else _scalar(form, f, raw, lang)


def _medications(raw: Mapping[str, Any], lang: str) -> tuple[list[dict], dict[str, str]]:
    """Drugs 1-3 as flat fields med_N_name / med_N_times (每日次数) / med_N_dose (每次 mg)."""
    meds, errors = [], {}
    times_f = Field("times", "每日次数", "times a day", "int", low=1, high=12)
    dose_f = Field("dose", "每次剂量", "dose", "decimal", low=0.001, high=100000, unit="mg", decimals=3)
    for n in range(1, MEDICATION_SLOTS + 1):
        name = str(raw.get(f"med_{n}_name") or "").strip()
        times, dose = str(raw.get(f"med_{n}_times") or "").strip(), str(raw.get(f"med_{n}_dose") or "").strip()
        if not (name or times or dose):
            continue
        if not name:
            errors[f"med_{n}_name"] = message("med_no_name", lang, n=n)
            continue
        if not times or not dose:
            errors[f"med_{n}_times" if not times else f"med_{n}_dose"] = message("med_incomplete", lang, n=n)
            continue
        t, terr = _number(times_f, times, lang)
        d, derr = _number(dose_f, dose, lang)
        if terr or derr:
            errors[f"med_{n}_times" if terr else f"med_{n}_dose"] = terr or derr
            continue
        meds.append({"name": name[:100], "times_per_day": t, "dose_mg": d})
    return meds, errors


def validate(form: str, raw: Mapping[str, Any], *, today: date, lang: str = "zh",
             referral_pending: bool = False) -> Validated:
    """`referral_pending`: the last visit on this form was an urgent referral, so this contact
    records whether the patient arrived (referral_outcome)."""
    out = Validated()
    for f in fields_for(form):
        if f.kind == "medications":
            out.values["medications"], med_errors = _medications(raw, lang)
            out.errors.update(med_errors)
            continue
        value, err = read_field(form, f, raw, lang)
        out.values[f.name] = value
        if err:
            out.errors[f.name] = err
    _required(form, out, lang)
    _cross_checks(form, out, today, lang)
    _referral(out, lang, referral_pending)
    return out


def _referral(out: Validated, lang: str, pending: bool) -> None:
    """An urgent referral names why and where to (转诊原因, 转诊机构及科别)."""
    v, e = out.values, out.errors
    if v.get("next_step") == STEP_URGENT:
        for name in ("referral_reason", "referral_facility"):
            if not v.get(name) and name not in e:
                e[name] = message("urgent_needs", lang, label=BY_NAME[name].label(lang))
    if pending and not v.get("referral_outcome") and "referral_outcome" not in e:
        e["referral_outcome"] = message("outcome_needed", lang)


def _required(form: str, out: Validated, lang: str) -> None:
    needed = ["visit_date", "visit_mode", "classification", "next_visit_date"]
    if out.values.get("visit_mode") in FACE_TO_FACE_MODES:
        needed += ["sbp", "dbp"] if form == FORM_HYPERTENSION else ["fbg"]
    for name in needed:
        if out.values.get(name) is None and name not in out.errors:
            out.errors[name] = message("required", lang, label=BY_NAME[name].label(lang))


def _cross_checks(form: str, out: Validated, today: date, lang: str) -> None:
    v, e = out.values, out.errors

    def put(name: str, key: str, **kw: Any) -> None:
        e.setdefault(name, message(key, lang, **kw))

    visit = v.get("visit_date")
    if visit and date.fromisoformat(visit) > today:
        put("visit_date", "future", label=BY_NAME["visit_date"].label(lang))
    if v.get("sbp") is not None and v.get("dbp") is not None and "sbp" not in e and v["dbp"] >= v["sbp"]:
        put("dbp", "dbp_over_sbp")
    if visit and v.get("next_visit_date") and v["next_visit_date"] <= visit:
        put("next_visit_date", "next_before_visit")
    if v.get("adverse_reaction") == "2" and not v.get("adverse_reaction_text"):
        put("adverse_reaction_text", "needs_detail", label=BY_NAME["adverse_reaction_text"].label(lang))
    if v.get("classification") == CLASS_ADVERSE and v.get("adverse_reaction") != "2":
        put("adverse_reaction", "adverse_class")
    if form == FORM_DIABETES:
        if v.get("dorsalis_pedis") in ("2", "3") and not v.get("dorsalis_pedis_side"):
            put("dorsalis_pedis_side", "needs_side")
        if v.get("hba1c") is not None and not v.get("hba1c_date"):
            put("hba1c_date", "hba1c_date")
        if v.get("hba1c_date") and visit and v["hba1c_date"] > visit:
            put("hba1c_date", "hba1c_date_after")
