"""The 健康体检表 (annual health check, record kind `health_check`) as standard documents
(docs/interop.md §3a): WS/T 483 HSDC00.01 成人健康体检 in CDA R2, and a FHIR R4 transaction
Bundle (Composition, Organization, Patient, Encounter, Observations).

The measured items go as observations: BP per arm (the arm as targetSiteCode / bodySite),
temperature, pulse, respiration, height, weight, waist, BMI, fasting glucose, HbA1c and the ECG
conclusion. The CDA carries those with a WS 363 data element known to us (elements.MEASURED); the
others, and the rest of the form, are in the section's narrative only. FHIR carries all of them by
LOINC, with the data element as a second coding where known. The tables of rows (stays, home beds,
medications, vaccinations) are added by healthcheck_rows (docs/interop.md §3c).
"""
from __future__ import annotations

from typing import Any

from . import StandardsError, cda, elements as el, fhir, healthcheck_rows
from .identity import Clinic, resource_id

KIND = "health_check"
SNOMED = "http://snomed.info/sct"
# arm -> (SNOMED CT body structure, Chinese) [U]: docs/interop.md §3a
ARMS = {"left": ("368208006", "左上臂"), "right": ("368209003", "右上臂")}
_BY_FIELD = {e.field: e for e in el.MEASURED}


def _de(field: str, zh: str, ucum: str, loinc: str, display: str) -> el.Element:
    known = _BY_FIELD.get(field)
    return el.Element(field, known.de if known else "", zh, ucum, loinc, display,
                      verified=known.verified if known else False)


# health-check field -> (element, arm or None)
MEASURED: tuple[tuple[str, el.Element, str | None], ...] = (
    ("bp_left_sbp", _de("sbp", "左侧收缩压", "mm[Hg]", "8480-6", "Systolic blood pressure"), "left"),
    ("bp_left_dbp", _de("dbp", "左侧舒张压", "mm[Hg]", "8462-4", "Diastolic blood pressure"), "left"),
    ("bp_right_sbp", _de("sbp", "右侧收缩压", "mm[Hg]", "8480-6", "Systolic blood pressure"), "right"),
    ("bp_right_dbp", _de("dbp", "右侧舒张压", "mm[Hg]", "8462-4", "Diastolic blood pressure"), "right"),
    ("temperature", _de("temperature", "体温", "Cel", "8310-5", "Body temperature"), None),
    ("pulse", _de("pulse", "脉率", "/min", "8867-4", "Heart rate"), None),
    ("respiration", _de("respiration", "呼吸频率", "/min", "9279-1", "Respiratory rate"), None),
    ("height", _de("height", "身高", "cm", "8302-2", "Body height"), None),
    ("weight", _de("weight", "体重", "kg", "29463-7", "Body weight"), None),
    ("waist", _de("waist", "腰围", "cm", "8280-0", "Waist Circumference by NIH method"), None),
    ("bmi", _de("bmi", "体质指数", "kg/m2", "39156-5", "Body mass index (BMI) [Ratio]"), None),
    ("fbg", _de("fbg", "空腹血糖值", "mmol/L", "14771-0", "Fasting glucose [Moles/volume] in Serum or Plasma"), None),
    ("hba1c", _de("hba1c", "糖化血红蛋白值", "%", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), None),
)
ECG = el.Element("ecg", "", "心电图", "", "8601-7", "EKG impression", verified=False)
ECG_CODES = {"1": "正常", "2": "异常"}
LAB = {"fbg", "hba1c"}


def check_shape(record: dict[str, Any]) -> None:
    values = record.get("values")
    if not isinstance(values, dict) or not values.get("check_date"):
        raise StandardsError(f"health check {record.get('id')}: no check_date")
    if values.get("ecg") not in (None, "") and str(values["ecg"]) not in ECG_CODES:
        raise StandardsError(f"health check {record.get('id')}: ecg code {values['ecg']!r} is not 1 or 2")


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise StandardsError(f"{value!r} is not a number")
    try:
        return value if isinstance(value, (int, float)) else (float(value) if "." in value else int(value))
    except ValueError:
        raise StandardsError(f"{value!r} is not a number") from None


def _present(values: dict) -> list[tuple[str, el.Element, str | None]]:
    return [m for m in MEASURED if values.get(m[0]) not in (None, "")]


# ---------------------------------------------------------------- FHIR
def _encounter(record: dict, clinic: Clinic, pat: dict, org: dict) -> dict:
    day = record["values"]["check_date"]
    ident = fhir._identifier(clinic, KIND, record["id"], record["version"])
    res = {"resourceType": "Encounter", "id": resource_id(clinic, "encounter", KIND, record["id"], record["version"]),
           "identifier": [ident], "status": "finished",
           "class": {"system": fhir.ACT_CODE, "code": "AMB", "display": "ambulatory"},
           "type": [{"text": "健康体检"}], "subject": fhir._ref(pat), "serviceProvider": fhir._ref(org),
           "period": {"start": day, "end": day}}
    return fhir._entry(res, identifier=ident)


def _fhir_observation(record: dict, name: str, e: el.Element, clinic: Clinic, pat: dict, enc: dict,
                      arm: str | None) -> dict:
    ident = fhir._identifier(clinic, KIND, record["id"], record["version"], name)
    coding = [{"system": el.LOINC, "code": e.loinc, "display": e.loinc_display}]
    if e.de:
        coding.append({"system": fhir.OID + el.DE_CATALOG, "code": e.de, "display": e.zh})
    category = "laboratory" if name in LAB else ("procedure" if name == "ecg" else "vital-signs")
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id(clinic, "observation", KIND, record["id"], record["version"], name),
        "identifier": [ident], "status": "final",
        "category": [{"coding": [{"system": fhir.OBS_CATEGORY, "code": category}]}],
        "code": {"coding": coding, "text": e.zh}, "subject": fhir._ref(pat), "encounter": fhir._ref(enc),
        "effectiveDateTime": record["values"]["check_date"]}
    value = record["values"][name]
    if name == "ecg":
        label = ECG_CODES[str(value)]
        res["valueCodeableConcept"] = {"coding": [{"code": str(value), "display": label}],
                                       "text": record["values"].get("ecg_detail") or label}
    else:
        res["valueQuantity"] = {"value": _number(value), "unit": e.ucum, "system": el.UCUM, "code": e.ucum}
    if arm:
        code, zh = ARMS[arm]
        res["bodySite"] = {"coding": [{"system": SNOMED, "code": code}], "text": zh}
    return fhir._entry(res, identifier=ident)


def bundle(record: dict[str, Any], resident: dict[str, Any], clinic: Clinic) -> dict:
    check_shape(record)
    values = record["values"]
    org = fhir.organization(clinic)
    pat = fhir.patient(resident, clinic, org)
    enc = _encounter(record, clinic, pat, org)
    obs = [_fhir_observation(record, name, e, clinic, pat, enc, arm) for name, e, arm in _present(values)]
    if values.get("ecg") not in (None, ""):
        obs.append(_fhir_observation(record, "ecg", ECG, clinic, pat, enc, None))
    rows, sections = healthcheck_rows.fhir_entries(record, clinic, pat, enc)     # 住院, 用药, 接种 (§3c)
    comp = fhir._composition(KIND, record, el.HSDC00_01, clinic, pat, org, record["saved_at"], obs, enc)
    comp["resource"]["section"] += sections
    return fhir._bundle([comp, org, pat, enc, *obs, *rows])


# ---------------------------------------------------------------- CDA
def _narrative(values: dict) -> list[str]:
    lines = [f"体检日期: {values['check_date']}"]
    lines += [f"{e.zh}: {values[name]} {e.ucum}" for name, e, _arm in _present(values)]
    if values.get("ecg") not in (None, ""):
        lines.append(f"心电图: {ECG_CODES[str(values['ecg'])]}"
                     + (f"（{values['ecg_detail']}）" if values.get("ecg_detail") else ""))
    if values.get("selfcare_total") is not None:
        lines.append(f"老年人生活自理能力评估: {values['selfcare_total']}分")
    return lines


def document(record: dict[str, Any], resident: dict[str, Any], clinic: Clinic) -> bytes:
    """HSDC00.01 (成人健康体检) from a health check's payload."""
    check_shape(record)
    values = record["values"]
    root = cda._header(KIND, {**record, "at": record["saved_at"]}, el.HSDC00_01, clinic, resident)
    section = cda._section(root, "8716-3", "体格检查")
    cda._text(section, _narrative(values))
    day = values["check_date"].replace("-", "")
    for name, e, arm in _present(values):
        if not e.de:
            continue                                   # no WS 363 element known: narrative only
        obs = cda._observation(section, e)
        cda._e(obs, "effectiveTime", value=day)
        cda._xsi_type(cda._e(obs, "value", value=_number(values[name]), unit=e.ucum), "PQ")
        if arm:
            code, zh = ARMS[arm]
            cda._e(obs, "targetSiteCode", code=code, codeSystem="2.16.840.1.113883.6.96",
                   codeSystemName="SNOMED CT", displayName=zh)
    healthcheck_rows.cda_sections(root, record)                                  # 住院, 用药, 接种 (§3c)
    return cda.serialize(root)
