"""Issue 19.1, the follow-up's lifestyle (生活方式指导), medication (用药情况) and referral (转诊)
parts in the standard documents (docs/interop.md §3b): a hypertension follow-up saved by the node's
own code with all three, as HSDB04.01 (validated against the CDA R2 schema) and as a FHIR Bundle
(fhir.resources R4 and the official R4 JSON schema)."""
from __future__ import annotations

import json

import pytest
from lxml import etree

from edge.core import residents
from edge.core.followup import records
from edge.core.followup.validation import validate
from edge.core.store import Store
from interop_support import CLINIC, HTN_VISIT, NOW, TODAY, id_number
from sync.standards import StandardsError, documents
from test_interop_documents import cda_schema, fhir_schema  # noqa: F401 - the schema fixtures

V3 = {"v3": "urn:hl7-org:v3"}
LIFESTYLE_VISIT = {**HTN_VISIT, "smoking": "5", "smoking_target": "0", "drinking": "1.5", "drinking_target": "1",
                   "exercise_times": "3", "exercise_minutes": "30", "salt": "2", "salt_target": "1", "psych": "1",
                   "compliance": "2", "med_adherence": "2",
                   "med_1_name": "苯磺酸氨氯地平片", "med_1_times": "1", "med_1_dose": "5",
                   "med_2_name": "氢氯噻嗪片", "med_2_times": "3", "med_2_dose": "12.5",
                   "next_step": "3", "referral_reason": "两次控制不满意", "referral_facility": "县人民医院心内科"}


@pytest.fixture(scope="module")
def visit(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("node") / "node.db")
    rid = residents.create(store, {"name": "王建国", "id_number": id_number(3), "sex": "1", "birth_date": "1958-03-07",
                                   "htn": "1", "htn_diagnosed_on": "2020-01-01"},
                           division_code="110101001001", now=NOW, actor="doc", today=TODAY)
    v = validate("hypertension", LIFESTYLE_VISIT, today=TODAY)
    assert not v.errors, v.errors
    records.save(store, resident_id=rid, form="hypertension", values=v.values, actor="doc", at=NOW)
    with store.atomic() as conn:
        rows = {r[0]: json.loads(r[1]) for r in conn.execute(
            "SELECT kind, payload FROM outbox WHERE kind IN ('resident', 'followup') ORDER BY seq")}
    return rows["followup"], documents.build("followup", rows["followup"], rows["resident"], CLINIC)


def entries(doc, section_code):
    t = etree.fromstring(doc.cda)
    return t, t.xpath(f"//v3:section[v3:code/@code='{section_code}']", namespaces=V3)[0]


def test_the_cda_document_with_all_three_sections_is_valid_against_the_cda_r2_schema(visit, cda_schema):
    _payload, doc = visit
    tree = etree.fromstring(doc.cda)
    assert cda_schema.validate(tree), cda_schema.error_log.last_error
    titles = tree.xpath("//v3:section/v3:title/text()", namespaces=V3)
    assert titles == ["随访记录", "生活方式", "用药情况", "转诊"]


def test_lifestyle_items_carry_their_ws363_elements_and_values(visit):
    _payload, doc = visit
    _t, section = entries(doc, "29762-2")
    got = {o.xpath("v3:code/@code", namespaces=V3)[0]: (o.xpath("v3:value/@value | v3:value/@code", namespaces=V3),
                                                        o.xpath("v3:value/@unit", namespaces=V3))
           for o in section.xpath("v3:entry/v3:observation", namespaces=V3)}
    assert got == {"DE03.00.053.00": (["5"], ["{cigarette}/d"]), "DE03.00.054.00": (["75"], ["mL/d"]),
                   "DE03.00.056.00": (["2"], []), "DE05.10.083.00": (["1"], []), "DE05.10.068.00": (["2"], [])}
    text = section.xpath("v3:text/v3:paragraph/text()", namespaces=V3)
    assert "运动次数: 3" in text and "每次运动时间: 30" in text and "日吸烟量(目标): 0 支" in text


def test_each_drug_is_a_substance_administration_with_its_dose_and_times_a_day(visit):
    _payload, doc = visit
    _t, section = entries(doc, "10160-0")
    drugs = section.xpath("v3:entry/v3:substanceAdministration", namespaces=V3)
    one = lambda node, path: node.xpath(path, namespaces=V3)       # noqa: E731
    assert [one(d, ".//v3:manufacturedLabeledDrug/v3:name/text()")[0] for d in drugs] == ["苯磺酸氨氯地平片", "氢氯噻嗪片"]
    assert [(one(d, "v3:doseQuantity/@value")[0], one(d, "v3:effectiveTime/v3:period/@value")[0]) for d in drugs] == \
        [("5", "24"), ("12.5", "8")]
    assert one(drugs[1], "v3:entryRelationship/v3:observation[v3:code/@code='DE06.00.133.00']/v3:value/text()") == \
        ["每日3次"]
    adherence = one(section, "v3:entry/v3:observation[v3:code/@code='DE06.00.027.00']/v3:value")[0]
    assert (adherence.get("code"), adherence.get("codeSystem"), adherence.get("displayName")) == \
        ("2", "2.16.156.10011.2.3.2.12", "间断")


def test_the_referral_carries_its_reason_and_institution(visit):
    _payload, doc = visit
    _t, section = entries(doc, "42349-1")
    got = {o.xpath("v3:code/@code", namespaces=V3)[0]: o.xpath("v3:value/text()", namespaces=V3)[0]
           for o in section.xpath("v3:entry/v3:observation", namespaces=V3)}
    assert got == {"DE06.00.177.00": "两次控制不满意", "DE08.10.013.00": "县人民医院心内科"}


def test_the_fhir_resources_validate_and_carry_the_same_items(visit, fhir_schema):
    from fhir.resources import construct_fhir_element

    _payload, doc = visit
    bundle = json.loads(doc.fhir)
    construct_fhir_element("Bundle", bundle)
    for entry in bundle["entry"]:
        construct_fhir_element(entry["resource"]["resourceType"], entry["resource"])
    assert sorted(fhir_schema.iter_errors(bundle), key=str) == []
    by_type: dict[str, list] = {}
    for e in bundle["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    meds = by_type["MedicationStatement"]
    assert [(m["medicationCodeableConcept"]["text"], m["dosage"][0]["timing"]["repeat"]["frequency"],
             m["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"]) for m in meds] == \
        [("苯磺酸氨氯地平片", 1, 5), ("氢氯噻嗪片", 3, 12.5)]
    (referral,) = by_type["ServiceRequest"]
    assert (referral["reasonCode"][0]["text"], referral["locationCode"][0]["text"]) == ("两次控制不满意", "县人民医院心内科")
    social = {o["code"]["text"]: o.get("valueQuantity", {}).get("value") or o["valueCodeableConcept"]["text"]
              for o in by_type["Observation"] if o["category"][0]["coding"][0]["code"] in ("social-history", "therapy")}
    assert social == {"日吸烟量": 5, "日饮酒量": 75, "运动次数": 3, "每次运动时间": 30, "摄盐情况": "中",
                      "心理调整": "良好", "遵医行为": "一般", "服药依从性": "间断"}
    composition = bundle["entry"][0]["resource"]
    listed = {r["reference"] for r in composition["section"][0]["entry"]}
    assert {f"urn:uuid:{m['id']}" for m in meds} <= listed or {f"MedicationStatement/{m['id']}" for m in meds} <= listed


def test_a_lifestyle_code_outside_its_list_is_refused_naming_the_field(visit):
    payload, _doc = visit
    with pytest.raises(StandardsError, match="salt code '9'"):
        documents.build("followup", {**payload, "values": {**payload["values"], "salt": "9"}},
                        {"id": "x", "health_record_no": "1" * 17, "version": 1, "created_at": NOW.isoformat()}, CLINIC)
