"""Server-side validation of a submitted 健康体检表 with its self-care assessment.

Each field is read by the follow-up forms' reader (edge.core.followup.validation.read_field:
types, code lists, ranges, lengths, one message per field, Chinese or English); the tables of rows
(住院史, 家庭病床史, 主要用药情况, 预防接种史) are read row by row by `rows.read`; this module adds
the form's own cross-checks and the self-care scoring. `validate` never raises on bad input;
nothing is saved unless `errors` is empty (the caller's job).
"""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from ..followup.validation import Validated, message as followup_message, read_field
from . import rows, selfcare
from .fields import BY_NAME, EXCLUSIVE_FIRST, FIELDS, FORM

MESSAGES = {
    "none_with_others": ("“{none}”不能与其他选项同选", "'{none}' cannot be combined with other options"),
    "needs_score": ("粗筛阳性时请填写{label}", "a positive screen needs the {label}"),
    "needs_detail": ("选择“{choice}”时请填写{label}", "'{choice}' needs the {label}"),
    "selfcare_missing": ("请评估{item}", "judge {item}"),
    "selfcare_level": ("{item}没有该程度等级", "{item} has no such level on the form"),
    "selfcare_differs": ("与自理能力评估表的结果({band})不一致", "differs from the self-care assessment ({band})"),
    "selfcare_needed": ("65岁及以上老年人需填写生活自理能力评估", "residents aged 65 and over need the self-care "
                        "assessment"),
    "weight_goal": ("填写减体重目标时请选择“减体重”", "a weight target needs 'lose weight' ticked"),
    "quit_age": ("戒烟年龄不能早于开始吸烟年龄", "the age quitting cannot be before the age starting"),
    "quit_drink_age": ("戒酒年龄不能早于开始饮酒年龄", "the age quitting cannot be before the age starting"),
    "dbil_over_tbil": ("结合胆红素不能高于总胆红素", "conjugated bilirubin cannot exceed total bilirubin"),
}


def message(key: str, lang: str = "zh", **kw: Any) -> str:
    if key not in MESSAGES:
        return followup_message(key, lang, **kw)
    zh, en = MESSAGES[key]
    return (zh if lang == "zh" else en).format(**kw)


def validate(raw: Mapping[str, Any], *, today: date, lang: str = "zh", age: int | None = None) -> Validated:
    """`age`: the resident's age on the check date; 65 and over need the self-care assessment."""
    out = Validated()
    for f in FIELDS:
        if f.kind == "rows":
            out.values[f.name], errors = rows.read(raw, rows.BY_TABLE[f.name], today=today, lang=lang)
            out.errors.update(errors)
            continue
        value, err = read_field(FORM, f, raw, lang)
        out.values[f.name] = value
        if err:
            out.errors[f.name] = err
    _selfcare(out, raw, lang, age)
    _required(out, lang)
    _cross_checks(out, today, lang)
    return out


def _label(name: str, lang: str) -> str:
    return BY_NAME[name].label(lang)


def _selfcare(out: Validated, raw: Mapping[str, Any], lang: str, age: int | None) -> None:
    assessment, levels, errors = selfcare.read(raw)
    for item in selfcare.ITEMS:
        out.values[selfcare.field_name(item)] = levels.get(item.name)
    label = {selfcare.field_name(i): (i.zh if lang == "zh" else i.en) for i in selfcare.ITEMS}
    for name, why in errors.items():
        out.errors[name] = message("selfcare_" + why, lang, item=label[name])
    if assessment is None:
        out.values["selfcare_total"] = None
        if not errors and age is not None and age >= 65:
            out.errors.setdefault("selfcare_meal", message("selfcare_needed", lang))
        return
    out.values["selfcare_total"] = assessment.total
    given = out.values.get("selfcare_self")
    if given and given != assessment.band and "selfcare_self" not in out.errors:
        out.errors["selfcare_self"] = message("selfcare_differs", lang,
                                              band=selfcare.band_label(assessment.band, lang))
    out.values["selfcare_self"] = assessment.band


def _required(out: Validated, lang: str) -> None:
    if out.values.get("check_date") is None and "check_date" not in out.errors:
        out.errors["check_date"] = message("required", lang, label=_label("check_date", lang))


def _cross_checks(out: Validated, today: date, lang: str) -> None:
    v, e = out.values, out.errors

    def put(name: str, key: str, **kw: Any) -> None:
        e.setdefault(name, message(key, lang, **kw))

    if v.get("check_date") and date.fromisoformat(v["check_date"]) > today:
        put("check_date", "future", label=_label("check_date", lang))
    for arm in ("left", "right"):
        s, d = v.get(f"bp_{arm}_sbp"), v.get(f"bp_{arm}_dbp")
        if s is not None and d is not None and f"bp_{arm}_sbp" not in e and d >= s:
            put(f"bp_{arm}_dbp", "dbp_over_sbp")
    for name in EXCLUSIVE_FIRST:
        picked = v.get(name) or []
        if "1" in picked and len(picked) > 1:
            put(name, "none_with_others", none=BY_NAME[name].choices[0][1 if lang == "zh" else 2])
    for screen, score in (("cognition", "mmse_score"), ("mood", "gds_score")):
        if v.get(screen) == "2" and v.get(score) is None:
            put(score, "needs_score", label=_label(score, lang))
    for name, code, detail in (("evaluation", "2", "abnormal_1"), ("occupational", "2", "occupational_detail"),
                               ("ecg", "2", "ecg_detail")):
        if v.get(name) == code and not v.get(detail):
            choice = BY_NAME[name].choices[int(code) - 1][1 if lang == "zh" else 2]
            put(detail, "needs_detail", choice=choice, label=_label(detail, lang))
    if v.get("weight_goal") is not None and "5" not in (v.get("risk_factors") or []):
        put("weight_goal", "weight_goal")
    _ages(v, put)
    if v.get("dbil") is not None and v.get("tbil") is not None and v["dbil"] > v["tbil"]:
        put("dbil", "dbil_over_tbil")


def _ages(v: dict, put) -> None:
    for start, quit, key in (("smoking_start_age", "smoking_quit_age", "quit_age"),
                             ("drinking_start_age", "drinking_quit_age", "quit_drink_age")):
        if v.get(start) is not None and v.get(quit) is not None and v[quit] < v[start]:
            put(quit, key)
