"""Issue 19.1: our records as WS/T 483 CDA documents and FHIR R4 transaction Bundles
(docs/interop.md). The records are made by the node's own code; every CDA document validates
against HL7's CDA R2 schema and every FHIR resource against fhir.resources (R4 4.0.1) and the
official R4 JSON schema (both kept in tests/data with their sources)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from interop_support import CLINIC, node_records
from sync.standards import StandardsError, documents, elements as el
from sync.standards.identity import Clinic

DATA = Path(__file__).parent / "data"
V3 = {"v3": "urn:hl7-org:v3"}


@pytest.fixture(scope="module")
def cda_schema():
    return etree.XMLSchema(etree.parse(str(DATA / "cda-r2/infrastructure/cda/CDA_SDTC.xsd")))


@pytest.fixture(scope="module")
def fhir_schema():
    with gzip.open(DATA / "fhir-r4/fhir.schema.json.gz") as f:
        schema = json.load(f)
    return jsonschema.Draft6Validator(schema)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    recs = node_records(tmp_path_factory.mktemp("node"))
    resident = next(p for k, _, _, p in recs if k == "resident")
    return [(kind, payload, documents.build(kind, payload, resident, CLINIC)) for kind, _, _, payload in recs]


def by_form(built, form):
    return next((p, d) for k, p, d in built if k == "followup" and p["form"] == form)


def test_every_cda_document_is_well_formed_and_valid_against_the_cda_r2_schema(built, cda_schema):
    assert [k for k, _, _ in built] == ["resident", "followup", "followup"]
    for _kind, _payload, doc in built:
        tree = etree.fromstring(doc.cda)                   # well-formed, or this raises
        assert cda_schema.validate(tree), cda_schema.error_log.last_error


def test_the_cda_header_carries_the_chinese_identifiers_author_and_custodian(built):
    resident = built[0][1]
    codes = []
    for _kind, payload, doc in built:
        t = etree.fromstring(doc.cda)
        one = lambda path: t.xpath(path, namespaces=V3)        # noqa: E731
        assert one("/v3:ClinicalDocument/v3:realmCode/@code") == ["CN"]
        assert one("/v3:ClinicalDocument/v3:typeId/@extension") == ["POCD_MT000040"]
        assert one(f"/v3:ClinicalDocument/v3:id[@root='{el.DOC_SERIAL}']/@extension") == [doc.doc_id]
        codes += one(f"/v3:ClinicalDocument/v3:code[@codeSystem='{el.DOC_TYPES}']/@code")
        role = "/v3:ClinicalDocument/v3:recordTarget/v3:patientRole"
        assert one(f"{role}/v3:id[@root='{el.RECORD_NO}']/@extension") == [resident["health_record_no"]]
        assert one(f"{role}/v3:patient/v3:id[@root='{el.ID_CARD}']/@extension") == [resident["id_number"]]
        assert one(f"{role}/v3:patient/v3:administrativeGenderCode/@code") == ["1"]
        assert one("//v3:author/v3:assignedAuthor/v3:assignedPerson/v3:name/text()") == ["doc"]
        assert one("//v3:custodian//v3:representedCustodianOrganization/v3:name/text()") == ["东风村卫生室"]
        assert one("//v3:custodian//v3:representedCustodianOrganization/v3:id/@extension") == ["110101001001"]
        assert one("/v3:ClinicalDocument/v3:versionNumber/@value") == [str(payload["version"])]
    assert codes == ["HSDA00.01", "HSDB04.01", "HSDB04.02"]


def test_each_body_entry_carries_its_ws363_data_element_and_value(built):
    _p, doc = by_form(built, "hypertension")
    t = etree.fromstring(doc.cda)
    got = {o.xpath("v3:code/@code", namespaces=V3)[0]: (o.xpath("v3:value/@value | v3:value/@code", namespaces=V3),
                                                        o.xpath("v3:value/@unit", namespaces=V3))
           for o in t.xpath("//v3:section/v3:entry/v3:observation", namespaces=V3)}
    assert got == {"DE04.10.174.00": (["138"], ["mm[Hg]"]), "DE04.10.176.00": (["86"], ["mm[Hg]"]),
                   "DE04.10.167.00": (["165.0"], ["cm"]), "DE04.10.188.00": (["63.5"], ["kg"]),
                   "DE05.10.075.00": (["23.3"], ["kg/m2"]), "DE04.10.206.00": (["72"], ["/min"]),
                   "DE06.00.108.00": (["1"], []), "DE05.10.066.00": (["1"], []),
                   "DE06.00.027.00": (["1"], [])}                         # 服药依从性 规律, in the 用药 section (§3b)
    assert set(t.xpath("//v3:observation/v3:code/@codeSystem", namespaces=V3)) == {el.DE_CATALOG}
    mode = t.xpath("//v3:observation[v3:code/@code='DE06.00.108.00']/v3:value", namespaces=V3)[0]
    assert (mode.get("codeSystem"), mode.get("displayName")) == ("2.16.156.10011.2.3.1.183", "门诊")


def test_every_fhir_resource_validates_with_fhir_resources_r4(built):
    import fhir.resources
    from fhir.resources import construct_fhir_element

    assert fhir.resources.__fhir_version__ == "4.0.1"
    seen = set()
    for _kind, _payload, doc in built:
        bundle = json.loads(doc.fhir)
        construct_fhir_element("Bundle", bundle)           # raises on any invalid element
        for entry in bundle["entry"]:
            construct_fhir_element(entry["resource"]["resourceType"], entry["resource"])
            seen.add(entry["resource"]["resourceType"])
    assert seen == {"Composition", "Organization", "Patient", "Encounter", "Observation"}


def test_every_bundle_validates_against_the_official_fhir_r4_json_schema(built, fhir_schema):
    for _kind, _payload, doc in built:
        errors = sorted(fhir_schema.iter_errors(json.loads(doc.fhir)), key=str)
        assert errors == []
    broken = json.loads(built[1][2].fhir)
    broken["entry"][2]["resource"]["gender"] = "man"             # not in the R4 gender value set
    assert not fhir_schema.is_valid(broken)


def test_the_bundle_is_a_transaction_of_conditional_creates_keyed_on_business_identifiers(built):
    resident = built[0][1]
    payload, doc = by_form(built, "diabetes")
    bundle = json.loads(doc.fhir)
    assert bundle["type"] == "transaction"
    requests = {e["resource"]["resourceType"] + ":" + e["request"]["method"]: e["request"] for e in bundle["entry"]}
    assert requests["Patient:POST"]["ifNoneExist"] == f"identifier=urn:oid:2.16.156.10011.1.3|{resident['id_number']}"
    assert all(e["request"].get("ifNoneExist") for e in bundle["entry"])
    obs = {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in bundle["entry"]
           if e["resource"]["resourceType"] == "Observation"}
    assert obs["4548-4"]["valueQuantity"] == {"value": 6.9, "unit": "%", "system": "http://unitsofmeasure.org",
                                              "code": "%"}
    assert obs["8480-6"]["valueQuantity"]["code"] == "mm[Hg]"
    assert obs["8480-6"]["code"]["coding"][1] == {"system": "urn:oid:2.16.156.10011.2.2.1", "code": "DE04.10.174.00",
                                                  "display": "收缩压"}
    comp = bundle["entry"][0]["resource"]
    assert comp["type"]["coding"][0]["code"] == "HSDB04.02" and comp["id"] == doc.doc_id
    enc = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    assert enc["class"]["code"] == "HH"                                   # visit_mode 2 = 家庭 (home)


def test_the_same_record_version_gives_the_same_bytes_and_a_correction_a_new_document(built):
    resident = built[0][1]
    payload, doc = by_form(built, "hypertension")
    again = documents.build("followup", payload, resident, CLINIC)
    assert (again.doc_id, again.cda, again.fhir) == (doc.doc_id, doc.cda, doc.fhir)
    corrected = documents.build("followup", {**payload, "version": 2}, resident, CLINIC)
    assert corrected.doc_id != doc.doc_id
    comp = json.loads(corrected.fhir)["entry"][0]["resource"]
    assert comp["relatesTo"] == [{"code": "replaces", "targetIdentifier": {"system": "urn:ietf:rfc:3986",
                                                                           "value": f"urn:uuid:{doc.doc_id}"}}]
    other = documents.build("followup", payload, resident, Clinic("village-2", "西河村卫生室"))
    assert other.doc_id != doc.doc_id


def test_records_that_cannot_become_documents_are_refused_with_a_reason(built):
    resident = built[0][1]
    payload, _doc = by_form(built, "hypertension")
    with pytest.raises(StandardsError, match="no standard document"):
        documents.build("reading", {"id": "r1", "version": 1}, resident, CLINIC)
    with pytest.raises(StandardsError, match="has no record of resident"):
        documents.build("followup", payload, None, CLINIC)
    with pytest.raises(StandardsError, match="classification code '7'"):
        documents.build("followup", {**payload, "values": {**payload["values"], "classification": "7"}},
                        resident, CLINIC)
