"""The 健康体检表's tables of rows (住院史, 家庭病床史, 主要用药情况, 非免疫规划预防接种史;
edge/core/healthcheck/rows.py) in the HSDC00.01 CDA and the health-check FHIR Bundle
(docs/interop.md §3c).

CDA: a 住院治疗情况 section with one encounter per stay or home bed (IMP / HH, the period as
low/high, the facility as a 医疗机构名称 observation), a 主要用药情况 section with one
substanceAdministration per drug (the name on the labeled drug and as 药物名称, the row's 服药依从性
coded as on the follow-up), a 非免疫规划预防接种史 section with one substanceAdministration per
vaccine (the date given, the vaccine as the material). Every row is in its section's narrative too.
FHIR: an Encounter per stay or home bed, a MedicationStatement per drug with its adherence as an
Observation whose focus is the statement, an Immunization per vaccine, each in a Composition section
of its table. A row kept as free text from before the rows (or a payload whose field is still a
string) goes in the narrative only: CDA section text, a FHIR Composition section's text.
"""
from __future__ import annotations

import html
from typing import Any

from edge.core.healthcheck import rows as hc_rows

from . import cda, fhir
from .followup_sections import ADHERENCE, DRUG_NAME, REFERRAL_PLACE, label
from .identity import Clinic, resource_id

KIND = "health_check"
# (LOINC section code [U], section title, its tables); stays and home beds share the paper form's 住院治疗情况
SECTIONS = (("46240-8", "住院治疗情况", ("hospital_stays", "home_beds")),
            ("10160-0", "主要用药情况", ("medications",)),
            ("11369-6", "非免疫规划预防接种史", ("vaccinations",)))
ENCOUNTER_CLASS = {"hospital_stays": ("IMP", "inpatient encounter", "住院"),
                   "home_beds": ("HH", "home health", "家庭病床")}
ACT_CODE_OID = "2.16.840.1.113883.5.4"
DE_CATALOG = "2.16.156.10011.2.2.1"


def _rows(values: dict, table: str) -> list[dict]:
    return hc_rows.shown_rows(values, hc_rows.BY_TABLE[table])


def line(table: str, row: dict) -> str:
    """One row as the narrative says it: 住院史: 入院日期 2026-10-25，出院日期 …"""
    t = hc_rows.BY_TABLE[table]
    if row.get(hc_rows.LEGACY):
        return f"{t.zh}: {row[hc_rows.LEGACY]}"
    cells = [f"{c.zh} {hc_rows.compliance_label(row[c.name]) if c.kind == 'code' else row[c.name]}"
             for c in t.columns if row.get(c.name) not in (None, "")]
    return f"{t.zh}: {'，'.join(cells)}"


def _structured(values: dict, table: str) -> list[tuple[int, dict]]:
    return [(n, r) for n, r in enumerate(_rows(values, table), 1) if not r.get(hc_rows.LEGACY)]


def _adherence(row: dict, record_id: str) -> str | None:
    code = row.get("compliance")
    return None if code in (None, "") else label(ADHERENCE, code, record_id)


# ---------------------------------------------------------------- CDA
def cda_sections(root, record: dict) -> None:
    values = record["values"]
    for code, title, tables in SECTIONS:
        lines = [line(t, r) for t in tables for r in _rows(values, t)]
        if not lines:
            continue
        section = cda._section(root, code, title)
        cda._text(section, lines)
        for t in tables:
            for _n, row in _structured(values, t):
                {"medications": _drug, "vaccinations": _vaccine}.get(t, _stay)(section, t, row, record["id"])


def _element(parent, de: str, zh: str, value: str, kind: str = "ST", **attrs) -> None:
    obs = cda._e(cda._e(parent, "entryRelationship", typeCode="COMP"), "observation", classCode="OBS", moodCode="EVN")
    cda._e(obs, "code", code=de, codeSystem=DE_CATALOG, codeSystemName="卫生信息数据元目录", displayName=zh)
    node = cda._e(obs, "value", value, **attrs) if kind == "ST" else cda._e(obs, "value", **attrs)
    cda._xsi_type(node, kind)


def _stay(section, table: str, row: dict, rid: str) -> None:
    code, _display, zh = ENCOUNTER_CLASS[table]
    enc = cda._e(cda._e(section, "entry"), "encounter", classCode="ENC", moodCode="EVN")
    cda._e(enc, "code", code=code, codeSystem=ACT_CODE_OID, codeSystemName="ActCode", displayName=zh)
    cda._e(enc, "text", line(table, row))
    if row.get("start_date") or row.get("end_date"):
        period = cda._e(enc, "effectiveTime")
        for edge, key in (("low", "start_date"), ("high", "end_date")):
            if row.get(key):
                cda._e(period, edge, value=str(row[key]).replace("-", ""))
    if row.get("facility"):
        _element(enc, REFERRAL_PLACE, "医疗机构名称", str(row["facility"]))


def _drug(section, table: str, row: dict, rid: str) -> None:
    sa = cda._e(cda._e(section, "entry"), "substanceAdministration", classCode="SBADM", moodCode="EVN")
    cda._e(sa, "text", line(table, row))
    drug = cda._e(cda._e(cda._e(sa, "consumable"), "manufacturedProduct"), "manufacturedLabeledDrug")
    cda._e(drug, "name", str(row["name"]))
    _element(sa, DRUG_NAME, "药物名称", str(row["name"]))
    shown = _adherence(row, rid)
    if shown:
        _element(sa, ADHERENCE.de, ADHERENCE.zh, "", "CD", code=str(row["compliance"]), codeSystem=ADHERENCE.system,
                 codeSystemName=ADHERENCE.system_name, displayName=shown)


def _vaccine(section, table: str, row: dict, rid: str) -> None:
    sa = cda._e(cda._e(section, "entry"), "substanceAdministration", classCode="SBADM", moodCode="EVN")
    cda._e(sa, "text", line(table, row))
    if row.get("start_date"):
        cda._e(sa, "effectiveTime", value=row["start_date"].replace("-", ""))
    material = cda._e(cda._e(cda._e(sa, "consumable"), "manufacturedProduct"), "manufacturedMaterial")
    cda._e(material, "name", str(row["name"]))
    if row.get("facility"):
        _element(sa, REFERRAL_PLACE, "医疗机构名称", str(row["facility"]))


# ---------------------------------------------------------------- FHIR
def fhir_entries(record: dict, clinic: Clinic, pat: dict, enc: dict) -> tuple[list[dict], list[dict]]:
    """The rows' resources and the Composition sections that list them (and any free text)."""
    values = record["values"]
    entries: list[dict] = []
    sections: list[dict] = []
    for code, title, tables in SECTIONS:
        mine: list[dict] = []
        for t in tables:
            for n, row in _structured(values, t):
                made = {"medications": _statement, "vaccinations": _immunization}.get(t, _encounter)(
                    record, t, n, row, clinic, pat, enc)
                mine += made
        free = [line(t, r) for t in tables for r in _rows(values, t) if r.get(hc_rows.LEGACY)]
        if not (mine or free):
            continue
        section: dict[str, Any] = {"title": title, "code": {"coding": [{"system": "http://loinc.org", "code": code}]}}
        if mine:
            section["entry"] = [fhir._ref(e) for e in mine]
        if free:
            section["text"] = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                               + "".join(f"<p>{html.escape(x)}</p>" for x in free) + "</div>"}
        entries += mine
        sections.append(section)
    return entries, sections


def _ident(clinic: Clinic, record: dict, table: str, n: int) -> dict:
    return fhir._identifier(clinic, KIND, record["id"], record["version"], f"{table}-{n}")


def _rid(clinic: Clinic, kind: str, record: dict, table: str, n: int) -> str:
    return resource_id(clinic, kind, KIND, record["id"], record["version"], table, n)


def _encounter(record, table, n, row, clinic, pat, enc) -> list[dict]:
    code, display, zh = ENCOUNTER_CLASS[table]
    ident = _ident(clinic, record, table, n)
    res: dict[str, Any] = {
        "resourceType": "Encounter", "id": _rid(clinic, "encounter", record, table, n),
        "identifier": [ident], "status": "finished" if row.get("end_date") else "in-progress",
        "class": {"system": fhir.ACT_CODE, "code": code, "display": display}, "type": [{"text": zh}],
        "subject": fhir._ref(pat)}
    period = {k: row[c] for k, c in (("start", "start_date"), ("end", "end_date")) if row.get(c)}
    if period:
        res["period"] = period
    if row.get("record_no"):
        res["identifier"].append({"type": {"text": "病案号"}, "value": str(row["record_no"])})
    if row.get("reason"):
        res["reasonCode"] = [{"text": str(row["reason"])}]
    if row.get("facility"):
        res["serviceProvider"] = {"display": str(row["facility"])}
    return [fhir._entry(res, identifier=ident)]


def _statement(record, table, n, row, clinic, pat, enc) -> list[dict]:
    ident = _ident(clinic, record, table, n)
    day = record["values"]["check_date"]
    res: dict[str, Any] = {
        "resourceType": "MedicationStatement", "id": _rid(clinic, "medication", record, table, n),
        "identifier": [ident], "status": "not-taken" if str(row.get("compliance")) == "3" else "active",
        "medicationCodeableConcept": {"text": str(row["name"])}, "subject": fhir._ref(pat),
        "context": fhir._ref(enc), "dateAsserted": day}
    dosage = " ".join(str(row[k]) for k in ("usage", "dose") if row.get(k))
    if dosage:
        res["dosage"] = [{"text": dosage}]
    if row.get("duration"):
        res["note"] = [{"text": f"用药时间: {row['duration']}"}]
    out = [fhir._entry(res, identifier=ident)]
    shown = _adherence(row, record["id"])
    if shown:
        aid = fhir._identifier(clinic, KIND, record["id"], record["version"], f"{table}-{n}-adherence")
        obs = {"resourceType": "Observation", "id": _rid(clinic, "observation", record, table, n),
               "identifier": [aid], "status": "final",
               "category": [{"coding": [{"system": fhir.OBS_CATEGORY, "code": "therapy"}]}],
               "code": {"coding": [{"system": fhir.OID + DE_CATALOG, "code": ADHERENCE.de, "display": ADHERENCE.zh}],
                        "text": ADHERENCE.zh},
               "subject": fhir._ref(pat), "encounter": fhir._ref(enc), "focus": [fhir._ref(out[0])],
               "effectiveDateTime": day,
               "valueCodeableConcept": {"coding": [{"system": fhir.OID + ADHERENCE.system,
                                                    "code": str(row["compliance"]), "display": shown}],
                                        "text": shown}}
        out.append(fhir._entry(obs, identifier=aid))
    return out


def _immunization(record, table, n, row, clinic, pat, enc) -> list[dict]:
    ident = _ident(clinic, record, table, n)
    res: dict[str, Any] = {
        "resourceType": "Immunization", "id": _rid(clinic, "immunization", record, table, n),
        "identifier": [ident], "status": "completed", "vaccineCode": {"text": str(row["name"])},
        "patient": fhir._ref(pat), "recorded": record["values"]["check_date"], "primarySource": False}
    if row.get("start_date"):
        res["occurrenceDateTime"] = row["start_date"]
    else:
        res["occurrenceString"] = "接种日期未记录"
    if row.get("facility"):
        res["performer"] = [{"actor": {"display": str(row["facility"])}}]
    return [fhir._entry(res, identifier=ident)]
