"""The follow-up's lifestyle (生活方式指导), medication (用药情况) and referral (转诊) parts as
standard document sections (docs/interop.md §3b), for HSDB04.01 / HSDB04.02 (cda.py) and the
follow-up Bundle (fhir.py).

CDA: a 生活方式 section of observations coded with their WS 363 data elements; a 用药 section of
one substanceAdministration per drug (name, dose, times a day as a PIVL_TS period) and the visit's
服药依从性; a 转诊 section with the reason and the institution. An item with no data element we
could find goes in the section's narrative only. FHIR: lifestyle and adherence Observations
(category social-history / therapy), one MedicationStatement per drug, and a ServiceRequest for a
referral, each a conditional create on its own identifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import StandardsError, cda, fhir
from .identity import Clinic, resource_id


@dataclass(frozen=True)
class Item:
    field: str                  # the follow-up form's field (edge/core/followup/fields.py)
    de: str                     # WS 363 data element; "" = none found (narrative / text-coded only)
    zh: str
    unit: str = ""              # UCUM unit of a quantity (after `factor`); "" for a coded value
    factor: float = 1.0         # the form's unit -> the data element's
    codes: tuple[tuple[str, str], ...] = ()
    system: str = ""            # the value's code system OID; "" where it is [U]
    system_name: str = ""
    verified: bool = False      # False: [U] in docs/interop.md §3b


GOOD_FAIR_POOR = (("1", "良好"), ("2", "一般"), ("3", "差"))
LIFESTYLE = (
    Item("smoking", "DE03.00.053.00", "日吸烟量", "{cigarette}/d", verified=True),
    Item("drinking", "DE03.00.054.00", "日饮酒量", "mL/d", factor=50.0),     # the element is in mL; 1 两 = 50 mL
    Item("exercise_times", "", "运动次数", "/wk"),
    Item("exercise_minutes", "", "每次运动时间", "min"),
    Item("salt", "DE03.00.056.00", "摄盐情况", codes=(("1", "轻"), ("2", "中"), ("3", "重")),
         system_name="摄盐情况代码表"),
    Item("psych", "DE05.10.083.00", "心理调整", codes=GOOD_FAIR_POOR, system_name="心理调整评价结果代码表"),
    Item("compliance", "DE05.10.068.00", "遵医行为", codes=GOOD_FAIR_POOR, system_name="遵医行为评价结果代码表"),
)
ADHERENCE = Item("med_adherence", "DE06.00.027.00", "服药依从性", codes=(("1", "规律"), ("2", "间断"), ("3", "不服药")),
                 system="2.16.156.10011.2.3.2.12", system_name="服药依从性代码表", verified=True)
DRUG_NAME = "DE08.50.022.00"          # 药物名称
FREQUENCY = "DE06.00.133.00"          # 药物使用频率
DOSE = "DE08.50.023.00"               # 药物使用次剂量 [U]
REFERRAL_REASON = "DE06.00.177.00"    # 转诊原因 [U]
REFERRAL_PLACE = "DE08.10.013.00"     # 医疗机构名称 (拟接受医疗机构名称)
# narrative only: targets and the fields with no data element found
NARRATIVE = (("smoking_target", "日吸烟量(目标)", "支"), ("drinking_target", "日饮酒量(目标)", "两"),
             ("exercise_times_target", "运动次数(目标)", "次/周"),
             ("exercise_minutes_target", "每次运动时间(目标)", "分钟/次"), ("salt_target", "摄盐情况(目标)", ""),
             ("staple_food", "主食", "克/天"), ("staple_food_target", "主食(目标)", "克/天"))
MED_NARRATIVE = (("medications_other", "其他药物"), ("insulin_type", "胰岛素种类"), ("insulin_usage", "胰岛素用法和用量"))


def present(values: dict, field: str) -> bool:
    return values.get(field) not in (None, "", [])


def number(item: Item, value: Any) -> int | float:
    try:
        n = float(value) * item.factor
    except (TypeError, ValueError):
        raise StandardsError(f"{item.field} {value!r} is not a number") from None
    return int(n) if n == int(n) else round(n, 3)


def label(item: Item, code: Any, record_id: str) -> str:
    found = dict(item.codes).get(str(code))
    if found is None:
        raise StandardsError(f"follow-up {record_id}: {item.field} code {code!r} is not in {item.zh}'s code list")
    return found


def medications(values: dict, record_id: str) -> list[dict]:
    meds = values.get("medications") or []
    if not isinstance(meds, list) or not all(isinstance(m, dict) and m.get("name") for m in meds):
        raise StandardsError(f"follow-up {record_id}: medications must be a list of drugs with a name")
    return meds


def dose(med: dict) -> str:
    return f"{float(med['dose_mg']):g}"


def usage(med: dict) -> str:
    return f"每日{med['times_per_day']}次，每次{dose(med)}mg"


def referral(values: dict) -> bool:
    return present(values, "referral_reason") or present(values, "referral_facility")


# ---------------------------------------------------------------- FHIR
def fhir_entries(record: dict, clinic: Clinic, pat: dict, enc: dict) -> list[dict]:
    """The lifestyle and adherence Observations, the MedicationStatements and the ServiceRequest."""
    values, rid = record["values"], record["id"]
    out = [_fhir_item(record, it, clinic, pat, enc, "social-history") for it in LIFESTYLE
           if present(values, it.field)]
    if present(values, ADHERENCE.field):
        out.append(_fhir_item(record, ADHERENCE, clinic, pat, enc, "therapy"))
    out += [_statement(record, n, med, clinic, pat, enc) for n, med in enumerate(medications(values, rid), 1)]
    if referral(values):
        out.append(_service_request(record, clinic, pat, enc))
    return out


def _fhir_item(record: dict, it: Item, clinic: Clinic, pat: dict, enc: dict, category: str) -> dict:
    ident = fhir._identifier(clinic, "followup", record["id"], record["version"], it.field)
    code: dict[str, Any] = {"text": it.zh}
    if it.de:
        code["coding"] = [{"system": fhir.OID + "2.16.156.10011.2.2.1", "code": it.de, "display": it.zh}]
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id(clinic, "observation", record["id"], record["version"], it.field),
        "identifier": [ident], "status": "final",
        "category": [{"coding": [{"system": fhir.OBS_CATEGORY, "code": category}]}],
        "code": code, "subject": fhir._ref(pat), "encounter": fhir._ref(enc),
        "effectiveDateTime": record["values"]["visit_date"]}
    value = record["values"][it.field]
    if it.codes:
        shown = label(it, value, record["id"])
        coding = {"code": str(value), "display": shown, **({"system": fhir.OID + it.system} if it.system else {})}
        res["valueCodeableConcept"] = {"coding": [coding], "text": shown}
    else:
        res["valueQuantity"] = {"value": number(it, value), "unit": it.unit, "system": "http://unitsofmeasure.org",
                                "code": it.unit}
    return fhir._entry(res, identifier=ident)


def _statement(record: dict, n: int, med: dict, clinic: Clinic, pat: dict, enc: dict) -> dict:
    ident = fhir._identifier(clinic, "followup", record["id"], record["version"], f"medication-{n}")
    res = {"resourceType": "MedicationStatement",
           "id": resource_id(clinic, "medication", record["id"], record["version"], n),
           "identifier": [ident], "status": "active", "medicationCodeableConcept": {"text": med["name"]},
           "subject": fhir._ref(pat), "context": fhir._ref(enc),
           "effectiveDateTime": record["values"]["visit_date"], "dateAsserted": record["values"]["visit_date"],
           "dosage": [{"text": usage(med),
                       "timing": {"repeat": {"frequency": int(med["times_per_day"]), "period": 1, "periodUnit": "d"}},
                       "doseAndRate": [{"doseQuantity": {"value": med["dose_mg"], "unit": "mg",
                                                         "system": "http://unitsofmeasure.org", "code": "mg"}}]}]}
    return fhir._entry(res, identifier=ident)


def _service_request(record: dict, clinic: Clinic, pat: dict, enc: dict) -> dict:
    values = record["values"]
    ident = fhir._identifier(clinic, "followup", record["id"], record["version"], "referral")
    res: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": resource_id(clinic, "referral", record["id"], record["version"]),
        "identifier": [ident], "status": "active", "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005",
                             "display": "Patient referral"}], "text": "转诊"},
        "subject": fhir._ref(pat), "encounter": fhir._ref(enc), "authoredOn": values["visit_date"]}
    if present(values, "referral_reason"):
        res["reasonCode"] = [{"text": str(values["referral_reason"])}]
    if present(values, "referral_facility"):
        res["locationCode"] = [{"text": str(values["referral_facility"])}]
    return fhir._entry(res, identifier=ident)


# ---------------------------------------------------------------- CDA
def cda_sections(root, record: dict) -> None:
    """Append the lifestyle, medication and referral sections a follow-up has values for."""
    values, rid = record["values"], record["id"]
    day = values["visit_date"].replace("-", "")
    items = [it for it in LIFESTYLE if present(values, it.field)]
    extra = [(zh, values[f], unit) for f, zh, unit in NARRATIVE if present(values, f)]
    if items or extra:
        section = cda._section(root, "29762-2", "生活方式")
        cda._text(section, [f"{it.zh}: {values[it.field]}" for it in items] + [f"{zh}: {v} {u}".strip()
                                                                              for zh, v, u in extra])
        for it in items:
            if it.de:
                _cda_item(section, it, values[it.field], day, rid)
    meds = medications(values, rid)
    other = [(zh, values[f]) for f, zh in MED_NARRATIVE if present(values, f)]
    if meds or other or present(values, ADHERENCE.field):
        section = cda._section(root, "10160-0", "用药情况")
        lines = [f"{m['name']}: {usage(m)}" for m in meds] + [f"{zh}: {v}" for zh, v in other]
        if present(values, ADHERENCE.field):
            lines.append(f"{ADHERENCE.zh}: {label(ADHERENCE, values[ADHERENCE.field], rid)}")
        cda._text(section, lines)
        for med in meds:
            _drug(section, med)
        if present(values, ADHERENCE.field):
            _cda_item(section, ADHERENCE, values[ADHERENCE.field], day, rid)
    if referral(values):
        section = cda._section(root, "42349-1", "转诊")
        cda._text(section, [f"{zh}: {values[f]}" for f, zh in (("referral_reason", "转诊原因"),
                                                              ("referral_facility", "转诊机构及科别"))
                            if present(values, f)])
        for field, de, zh in (("referral_reason", REFERRAL_REASON, "转诊原因"),
                              ("referral_facility", REFERRAL_PLACE, "转入医疗机构及科别")):
            if present(values, field):
                obs = _coded_observation(section, de, zh)
                cda._xsi_type(cda._e(obs, "value", str(values[field])), "ST")


def _coded_observation(section, de: str, zh: str):
    obs = cda._e(cda._e(section, "entry"), "observation", classCode="OBS", moodCode="EVN")
    cda._e(obs, "code", code=de, codeSystem="2.16.156.10011.2.2.1", codeSystemName="卫生信息数据元目录", displayName=zh)
    return obs


def _cda_item(section, it: Item, value: Any, day: str, rid: str) -> None:
    obs = _coded_observation(section, it.de, it.zh)
    cda._e(obs, "effectiveTime", value=day)
    if it.codes:
        cda._xsi_type(cda._e(obs, "value", code=str(value), codeSystem=it.system, codeSystemName=it.system_name,
                             displayName=label(it, value, rid)), "CD")
    else:
        cda._xsi_type(cda._e(obs, "value", value=number(it, value), unit=it.unit), "PQ")


def _drug(section, med: dict) -> None:
    """One drug: a substanceAdministration (CDA R2's own structure: the dose, the times a day as a
    period, the name on the labeled drug) with the WS 363 elements as observations beside it."""
    sa = cda._e(cda._e(section, "entry"), "substanceAdministration", classCode="SBADM", moodCode="EVN")
    cda._e(sa, "text", usage(med))
    times = int(med["times_per_day"])
    timing = cda._e(sa, "effectiveTime", institutionSpecified="true", operator="A")
    cda._xsi_type(timing, "PIVL_TS")
    cda._e(timing, "period", value=f"{24 / times:g}", unit="h")
    cda._e(sa, "doseQuantity", value=dose(med), unit="mg")
    drug = cda._e(cda._e(cda._e(sa, "consumable"), "manufacturedProduct"), "manufacturedLabeledDrug")
    cda._e(drug, "name", str(med["name"]))
    for de, zh, kind, value in ((DRUG_NAME, "药物名称", "ST", str(med["name"])),
                                (FREQUENCY, "药物使用频率", "ST", f"每日{times}次"),
                                (DOSE, "药物使用次剂量", "PQ", dose(med))):
        obs = cda._e(cda._e(sa, "entryRelationship", typeCode="COMP"), "observation", classCode="OBS", moodCode="EVN")
        cda._e(obs, "code", code=de, codeSystem="2.16.156.10011.2.2.1", codeSystemName="卫生信息数据元目录",
               displayName=zh)
        node = cda._e(obs, "value", value=value, unit="mg") if kind == "PQ" else cda._e(obs, "value", value)
        cda._xsi_type(node, kind)
