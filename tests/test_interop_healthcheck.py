"""The 健康体检表 as standard documents (docs/interop.md §3a): WS/T 483 HSDC00.01 in CDA R2, valid
against HL7's CDA R2 schema, and a FHIR R4 transaction Bundle whose every resource validates with
fhir.resources (R4 4.0.1) and against the official FHIR R4 JSON schema, as the follow-ups' in
tests/test_interop_documents.py. The records are made by the node's own code."""
from __future__ import annotations

import json

import pytest
from lxml import etree

from interop_support import CLINIC, health_check_records
from sync.standards import StandardsError, documents, elements as el
from tests.test_interop_documents import V3, cda_schema, fhir_schema  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    recs = health_check_records(tmp_path_factory.mktemp("node"))
    resident = next(p for k, _, _, p in recs if k == "resident")
    return resident, [(p, documents.build(k, p, resident, CLINIC)) for k, _, _, p in recs if k == "health_check"]


def test_the_cda_is_hsdc00_01_valid_against_the_cda_r2_schema_with_each_arm(built, cda_schema):  # noqa: F811
    resident, docs = built
    assert len(docs) == 2
    payload, doc = docs[0]
    t = etree.fromstring(doc.cda)
    assert cda_schema.validate(t), cda_schema.error_log.last_error
    assert t.xpath(f"/v3:ClinicalDocument/v3:code[@codeSystem='{el.DOC_TYPES}']/@code", namespaces=V3) == ["HSDC00.01"]
    assert t.xpath("/v3:ClinicalDocument/v3:title/text()", namespaces=V3) == ["成人健康体检"]
    assert t.xpath(f"//v3:patientRole/v3:patient/v3:id[@root='{el.ID_CARD}']/@extension",
                   namespaces=V3) == [resident["id_number"]]
    got = sorted((o.xpath("v3:code/@code", namespaces=V3)[0], o.xpath("v3:value/@value", namespaces=V3)[0],
                  (o.xpath("v3:targetSiteCode/@code", namespaces=V3) or [""])[0])
                 for o in t.xpath("//v3:entry/v3:observation", namespaces=V3))
    assert got == sorted([("DE04.10.174.00", "142", "368208006"), ("DE04.10.176.00", "88", "368208006"),
                          ("DE04.10.174.00", "138", "368209003"), ("DE04.10.176.00", "86", "368209003"),
                          ("DE04.10.167.00", "165.0", ""), ("DE04.10.188.00", "63.5", ""),
                          ("DE05.10.075.00", "23.3", ""), ("DE04.50.102.00", "6.1", "")])
    text = "".join(t.xpath("//v3:section/v3:text//text()", namespaces=V3))
    assert "腰围: 86.0 cm" in text and "心电图: 异常（窦性心律；ST-T改变）" in text and "脉率: 74 /min" in text
    assert cda_schema.validate(etree.fromstring(docs[1][1].cda))


def test_every_fhir_resource_validates_with_fhir_resources_r4_and_the_json_schema(built, fhir_schema):  # noqa: F811
    from fhir.resources import construct_fhir_element

    for _payload, doc in built[1]:
        bundle = json.loads(doc.fhir)
        construct_fhir_element("Bundle", bundle)
        for entry in bundle["entry"]:
            construct_fhir_element(entry["resource"]["resourceType"], entry["resource"])
        assert sorted(fhir_schema.iter_errors(bundle), key=str) == []
    bundle = json.loads(built[1][0][1].fhir)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[:4] == ["Composition", "Organization", "Patient", "Encounter"] and set(kinds[4:]) == {"Observation"}
    comp = bundle["entry"][0]["resource"]
    assert comp["type"]["coding"][0]["code"] == "HSDC00.01" and comp["title"] == "成人健康体检"
    assert len(comp["section"][0]["entry"]) == len(kinds) - 4 == 13     # 12 measured items and the ECG
    obs = {(o["code"]["coding"][0]["code"], (o.get("bodySite") or {}).get("text")): o
           for o in (e["resource"] for e in bundle["entry"][4:])}
    assert obs[("8480-6", "左上臂")]["valueQuantity"]["value"] == 142
    assert obs[("8480-6", "右上臂")]["valueQuantity"]["value"] == 138
    assert obs[("8280-0", None)]["valueQuantity"] == {"value": 86.0, "unit": "cm", "system": el.UCUM, "code": "cm"}
    ecg = obs[("8601-7", None)]["valueCodeableConcept"]
    assert (ecg["coding"][0]["code"], ecg["text"]) == ("2", "窦性心律；ST-T改变")
    assert all(e["request"]["ifNoneExist"] for e in bundle["entry"])


def test_a_correction_is_a_new_document_that_replaces_the_first_and_a_rebuild_is_identical(built):
    resident, docs = built
    (p1, d1), (p2, d2) = docs
    assert d1.doc_id != d2.doc_id and (p1["version"], p2["version"]) == (1, 2)
    comp2 = json.loads(d2.fhir)["entry"][0]["resource"]
    assert comp2["relatesTo"][0]["targetIdentifier"]["value"] == f"urn:uuid:{d1.doc_id}"
    again = documents.build("health_check", p1, resident, CLINIC)
    assert (again.cda, again.fhir) == (d1.cda, d1.fhir)


def test_a_health_check_that_cannot_be_a_document_is_refused_with_a_reason(built):
    resident, docs = built
    payload = docs[0][0]
    with pytest.raises(StandardsError, match="no check_date"):
        documents.build("health_check", {**payload, "values": {}}, resident, CLINIC)
    with pytest.raises(StandardsError, match="has no record of resident"):
        documents.build("health_check", payload, None, CLINIC)
    with pytest.raises(StandardsError, match="ecg code '7'"):
        documents.build("health_check", {**payload, "values": {**payload["values"], "ecg": "7"}}, resident, CLINIC)


@pytest.mark.parametrize("kind", ["fhir", "cda"])
def test_the_hub_forwards_health_checks_to_the_platform_once(tmp_path, kind):
    from county_platform import Platform
    from interop_support import NOW
    from sync.hub import forwarding
    from tests.test_interop_forwarding import _hub_db

    sent = health_check_records(tmp_path)
    gen = _hub_db(f"sqlite:///{tmp_path / 'hub.db'}", sent)
    _url, store = next(gen)
    with Platform() as platform:
        forwarding.add_profile(store, "county", county="110101", kind=kind, target=platform.url + "/" + kind,
                               clinics={"village-1": {"name": "东风村卫生室", "code": "110101001001"}}, now=NOW)
        assert forwarding.forward_once(store, now=lambda: NOW) == {"county": {"new": 3, "delivered": 3}}
        got = {(r["kind"], r["version"], r["state"]) for r in forwarding.listing(store)}
        assert got == {("resident", 1, "delivered"), ("health_check", 1, "delivered"),
                       ("health_check", 2, "delivered")}
        docs = [documents.build(k, p, sent[0][3], CLINIC).doc_id for k, _, _, p in sent if k == "health_check"]
        assert platform.requests[1:] == docs                       # the resident first, then both versions
        if kind == "fhir":
            assert sum(n for (t, _), n in platform.created.items() if t == "Observation") == 26
        assert forwarding.forward_once(store, now=lambda: NOW) == {"county": {"new": 0}}
    next(gen, None)
