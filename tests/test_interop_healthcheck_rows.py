"""The 健康体检表's tables of rows in its standard documents (docs/interop.md §3c): stays and home
beds as encounters, drugs as substance administrations / MedicationStatements with their 服药依从性,
vaccines as substance administrations / Immunizations; valid against HL7's CDA R2 schema,
fhir.resources (R4) and the FHIR R4 JSON schema. A free text saved before the rows goes as narrative."""
from __future__ import annotations

import json

import pytest
from lxml import etree

from interop_support import CLINIC, health_check_records
from sync.standards import documents
from tests.test_interop_documents import V3, cda_schema, fhir_schema  # noqa: F401  (fixtures)

ROWS = {"hospital_stays_1_start_date": "2026-03-02", "hospital_stays_1_end_date": "2026-03-09",
        "hospital_stays_1_reason": "肺炎", "hospital_stays_1_facility": "县人民医院", "hospital_stays_1_record_no": "A-77",
        "home_beds_1_start_date": "2026-10-01", "home_beds_1_reason": "脑卒中后康复",
        "home_beds_1_facility": "乡镇卫生院",
        "medications_1_name": "氨氯地平片", "medications_1_usage": "口服 每日1次", "medications_1_dose": "5mg",
        "medications_1_duration": "3年", "medications_1_compliance": "1",
        "medications_2_name": "二甲双胍", "medications_2_dose": "0.5g", "medications_2_compliance": "3",
        "vaccinations_1_name": "流感疫苗", "vaccinations_1_start_date": "2026-10-12",
        "vaccinations_1_facility": "乡镇卫生院"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    recs = health_check_records(tmp_path_factory.mktemp("node"), ROWS)
    resident = next(p for k, _, _, p in recs if k == "resident")
    payload = next(p for k, _, _, p in recs if k == "health_check")
    return resident, payload, documents.build("health_check", payload, resident, CLINIC)


def test_the_cda_carries_each_row_and_stays_valid(built, cda_schema):  # noqa: F811
    _resident, _payload, doc = built
    t = etree.fromstring(doc.cda)
    assert cda_schema.validate(t), cda_schema.error_log.last_error
    titles = t.xpath("//v3:section/v3:title/text()", namespaces=V3)
    assert titles[-3:] == ["住院治疗情况", "主要用药情况", "非免疫规划预防接种史"]
    enc = t.xpath("//v3:entry/v3:encounter", namespaces=V3)
    assert [(e.xpath("v3:code/@code", namespaces=V3)[0], e.xpath("v3:effectiveTime/v3:low/@value", namespaces=V3),
             e.xpath("v3:effectiveTime/v3:high/@value", namespaces=V3)) for e in enc] == [
        ("IMP", ["20260302"], ["20260309"]), ("HH", ["20261001"], [])]
    assert enc[0].xpath(".//v3:observation[v3:code/@code='DE08.10.013.00']/v3:value/text()",
                        namespaces=V3) == ["县人民医院"]
    drugs = t.xpath("//v3:substanceAdministration[.//v3:manufacturedLabeledDrug]", namespaces=V3)
    assert [d.xpath(".//v3:manufacturedLabeledDrug/v3:name/text()", namespaces=V3)[0] for d in drugs] == [
        "氨氯地平片", "二甲双胍"]
    adherence = [d.xpath(".//v3:observation[v3:code/@code='DE06.00.027.00']/v3:value", namespaces=V3)[0] for d in drugs]
    assert [(a.get("code"), a.get("displayName"), a.get("codeSystem")) for a in adherence] == [
        ("1", "规律", "2.16.156.10011.2.3.2.12"), ("3", "不服药", "2.16.156.10011.2.3.2.12")]
    vaccine = t.xpath("//v3:substanceAdministration[.//v3:manufacturedMaterial]", namespaces=V3)
    assert [v.xpath("v3:effectiveTime/@value", namespaces=V3) for v in vaccine] == [["20261012"]]
    text = "".join(t.xpath("//v3:section/v3:text//text()", namespaces=V3))
    assert "主要用药情况: 药物名称 氨氯地平片，用法 口服 每日1次，用量 5mg，用药时间 3年，服药依从性 规律" in text
    assert "住院史: 入院日期 2026-03-02，出院日期 2026-03-09，原因 肺炎，医疗机构名称 县人民医院，病案号 A-77" in text


def test_the_fhir_bundle_has_a_resource_per_row_each_valid(built, fhir_schema):  # noqa: F811
    from fhir.resources import construct_fhir_element

    _resident, _payload, doc = built
    bundle = json.loads(doc.fhir)
    construct_fhir_element("Bundle", bundle)
    for entry in bundle["entry"]:
        construct_fhir_element(entry["resource"]["resourceType"], entry["resource"])
    assert sorted(fhir_schema.iter_errors(bundle), key=str) == []
    res = [e["resource"] for e in bundle["entry"]]
    stays = [r for r in res if r["resourceType"] == "Encounter" and r.get("type", [{}])[0].get("text") != "健康体检"]
    assert [(s["class"]["code"], s["status"], s.get("period")) for s in stays] == [
        ("IMP", "finished", {"start": "2026-03-02", "end": "2026-03-09"}),
        ("HH", "in-progress", {"start": "2026-10-01"})]
    assert stays[0]["identifier"][1] == {"type": {"text": "病案号"}, "value": "A-77"}
    assert stays[0]["serviceProvider"] == {"display": "县人民医院"} and stays[0]["reasonCode"] == [{"text": "肺炎"}]
    meds = [r for r in res if r["resourceType"] == "MedicationStatement"]
    assert [(m["medicationCodeableConcept"]["text"], m["status"], m.get("dosage")) for m in meds] == [
        ("氨氯地平片", "active", [{"text": "口服 每日1次 5mg"}]), ("二甲双胍", "not-taken", [{"text": "0.5g"}])]
    assert meds[0]["note"] == [{"text": "用药时间: 3年"}]
    full = {e["resource"]["id"]: e["fullUrl"] for e in bundle["entry"]}
    adherence = [r for r in res if r["resourceType"] == "Observation" and r["code"]["text"] == "服药依从性"]
    assert [(a["focus"][0]["reference"], a["valueCodeableConcept"]["coding"][0]["code"]) for a in adherence] == [
        (full[meds[0]["id"]], "1"), (full[meds[1]["id"]], "3")]
    imm = [r for r in res if r["resourceType"] == "Immunization"]
    assert [(i["vaccineCode"]["text"], i["occurrenceDateTime"], i["performer"]) for i in imm] == [
        ("流感疫苗", "2026-10-12", [{"actor": {"display": "乡镇卫生院"}}])]
    sections = bundle["entry"][0]["resource"]["section"]
    assert [s["title"] for s in sections[1:]] == ["住院治疗情况", "主要用药情况", "非免疫规划预防接种史"]
    assert [len(s["entry"]) for s in sections[1:]] == [2, 4, 1]           # each drug with its adherence
    assert all(e["request"]["ifNoneExist"] for e in bundle["entry"])


def test_a_free_text_from_before_the_rows_goes_as_narrative(built, cda_schema, fhir_schema):  # noqa: F811
    from fhir.resources import construct_fhir_element

    resident, payload, _doc = built
    old = {**payload, "values": {**{k: v for k, v in payload["values"].items()
                                   if k not in ("hospital_stays", "home_beds", "vaccinations")},
                                 "medications": "硝苯地平缓释片 10mg 每日2次 <规律>", "vaccinations": "  "}}
    doc = documents.build("health_check", old, resident, CLINIC)
    t = etree.fromstring(doc.cda)
    assert cda_schema.validate(t), cda_schema.error_log.last_error
    assert t.xpath("//v3:section[v3:title='主要用药情况']/v3:text/v3:paragraph/text()", namespaces=V3) == [
        "主要用药情况: 硝苯地平缓释片 10mg 每日2次 <规律>"]
    assert not t.xpath("//v3:substanceAdministration", namespaces=V3)
    bundle = json.loads(doc.fhir)
    construct_fhir_element("Bundle", bundle)
    assert sorted(fhir_schema.iter_errors(bundle), key=str) == []
    section = bundle["entry"][0]["resource"]["section"][1]
    assert section["title"] == "主要用药情况" and "entry" not in section
    assert "硝苯地平缓释片 10mg 每日2次 &lt;规律&gt;" in section["text"]["div"]
    assert not [e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationStatement"]
