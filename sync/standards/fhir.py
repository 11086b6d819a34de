"""FHIR R4 transaction Bundles from our records (docs/interop.md §3).

Every entry is a conditional create (`request.ifNoneExist` on the resource's business identifier),
so posting the same Bundle twice creates nothing the second time; ids are stable per record version
(identity.py). A follow-up becomes Organization (the clinic), Patient (GB 11643 身份证号, else the
health-record number), Encounter (the visit), one Observation per measured or coded field (LOINC +
UCUM, and the WS 363 data element as a second coding) and a Composition (the HSDB04.0x document).
A resident record becomes the Patient, sent as a conditional update (it carries the newest details),
and an HSDA00.01 Composition.
"""
from __future__ import annotations

from typing import Any

from . import StandardsError, elements as el
from .identity import Clinic, document_id, fhir_time, resource_id

OID = "urn:oid:"
LOCAL = OID + el.LOCAL_ROOT
ENCOUNTER_CLASS = {"1": ("AMB", "ambulatory"), "2": ("HH", "home health"), "3": ("VR", "virtual")}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LAB = {"fbg", "hba1c"}


def _entry(resource: dict, *, identifier: dict | None = None, update: bool = False) -> dict:
    rtype, full = resource["resourceType"], f"urn:uuid:{resource['id']}"
    query = f"identifier={identifier['system']}|{identifier['value']}" if identifier else None
    if update:
        request = {"method": "PUT", "url": f"{rtype}?{query}"}
    else:
        request = {"method": "POST", "url": rtype, **({"ifNoneExist": query} if query else {})}
    return {"fullUrl": full, "resource": resource, "request": request}


def _ref(entry: dict) -> dict:
    return {"reference": entry["fullUrl"]}


def organization(clinic: Clinic) -> dict:
    ident = {"system": LOCAL + ".org", "value": clinic.code}
    res = {"resourceType": "Organization", "id": resource_id(clinic, "organization"), "identifier": [ident],
           "active": True, "name": clinic.name}
    return _entry(res, identifier=ident)


def patient_identifier(resident: dict) -> dict:
    if resident.get("id_number"):
        return {"system": OID + el.ID_CARD, "value": resident["id_number"]}
    if resident.get("health_record_no"):
        return {"system": OID + el.RECORD_NO, "value": resident["health_record_no"]}
    raise StandardsError(f"resident {resident.get('id')} has neither an ID number nor a health-record number")


def patient(resident: dict, clinic: Clinic, org: dict, *, update: bool = False) -> dict:
    idents = [i for i in ({"system": OID + el.ID_CARD, "value": resident.get("id_number")},
                          {"system": OID + el.RECORD_NO, "value": resident.get("health_record_no")}) if i["value"]]
    res: dict[str, Any] = {"resourceType": "Patient", "id": resource_id(clinic, "patient", resident["id"]),
                           "identifier": idents or [patient_identifier(resident)],
                           "active": not resident.get("voided_at"),
                           "gender": el.FHIR_GENDER.get(str(resident.get("sex") or "0"), "unknown"),
                           "managingOrganization": _ref(org)}
    if resident.get("name"):
        res["name"] = [{"text": resident["name"]}]
    if resident.get("birth_date"):
        res["birthDate"] = resident["birth_date"]
    if resident.get("phone"):
        res["telecom"] = [{"system": "phone", "value": resident["phone"]}]
    if resident.get("address"):
        res["address"] = [{"text": resident["address"]}]
    return _entry(res, identifier=patient_identifier(resident), update=update)


def _identifier(clinic: Clinic, *parts: object) -> dict:
    return {"system": LOCAL, "value": "/".join([clinic.node, *map(str, parts)])}


def _encounter(record: dict, clinic: Clinic, pat: dict, org: dict) -> dict:
    values = record["values"]
    code, display = ENCOUNTER_CLASS.get(str(values.get("visit_mode")), ("AMB", "ambulatory"))
    ident = _identifier(clinic, "followup", record["id"], record["version"])
    res = {"resourceType": "Encounter", "id": resource_id(clinic, "encounter", record["id"], record["version"]),
           "identifier": [ident], "status": "finished",
           "class": {"system": ACT_CODE, "code": code, "display": display},
           "subject": _ref(pat), "serviceProvider": _ref(org),
           "period": {"start": values["visit_date"], "end": values["visit_date"]}}
    return _entry(res, identifier=ident)


def _observation(record: dict, e: el.Element, clinic: Clinic, pat: dict, enc: dict) -> dict:
    value = record["values"][e.field]
    ident = _identifier(clinic, "followup", record["id"], record["version"], e.field)
    de = {"system": OID + el.DE_CATALOG, "code": e.de, "display": e.zh}
    category = "laboratory" if e.field in LAB else ("vital-signs" if e.ucum else "survey")
    res: dict[str, Any] = {
        "resourceType": "Observation", "id": resource_id(clinic, "observation", record["id"], record["version"], e.field),
        "identifier": [ident], "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": {"coding": ([{"system": el.LOINC, "code": e.loinc, "display": e.loinc_display}] if e.loinc else [])
                 + [de], "text": e.zh},
        "subject": _ref(pat), "encounter": _ref(enc), "effectiveDateTime": record["values"]["visit_date"]}
    if e.ucum:
        res["valueQuantity"] = {"value": float(value) if "." in str(value) else int(value), "unit": e.ucum,
                                "system": el.UCUM, "code": e.ucum}
    else:
        system, name = el.CODE_SYSTEMS[e.field]
        label = el.VALUE_SETS[e.field].get(str(value))
        if label is None:
            raise StandardsError(f"follow-up {record['id']}: {e.field} code {value!r} is not in {e.zh}'s code list")
        coding = {"code": str(value), "display": label, **({"system": OID + system} if system else {})}
        res["valueCodeableConcept"] = {"coding": [coding], "text": label}
    return _entry(res, identifier=ident)


def _composition(kind: str, record: dict, doc_code: str, clinic: Clinic, pat: dict, org: dict, at: str,
                 entries: list[dict], enc: dict | None = None) -> dict:
    doc = document_id(kind, record["id"], record["version"], clinic)
    ident = {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{doc}"}
    res: dict[str, Any] = {
        "resourceType": "Composition", "id": doc, "identifier": ident, "status": "final",
        "type": {"coding": [{"system": OID + el.DOC_TYPES, "code": doc_code, "display": el.DOCUMENT_TITLES[doc_code]}]},
        "subject": _ref(pat), "date": fhir_time(at), "author": [_ref(org)], "title": el.DOCUMENT_TITLES[doc_code],
        "custodian": _ref(org), "language": "zh-CN",
        "section": [{"title": el.DOCUMENT_TITLES[doc_code], "entry": [_ref(x) for x in entries]}]}
    if not entries:
        res["section"][0]["entry"] = [_ref(pat)]
    if enc:
        res["encounter"] = _ref(enc)
    if int(record["version"]) > 1:
        prev = document_id(kind, record["id"], int(record["version"]) - 1, clinic)
        res["relatesTo"] = [{"code": "replaces", "targetIdentifier": {"system": "urn:ietf:rfc:3986",
                                                                       "value": f"urn:uuid:{prev}"}}]
    return _entry(res, identifier=ident)


def _bundle(entries: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def followup_bundle(record: dict[str, Any], resident: dict[str, Any], clinic: Clinic) -> dict:
    doc_code = el.FORM_DOCUMENT.get(record.get("form"))
    if doc_code is None:
        raise StandardsError(f"follow-up {record.get('id')}: form {record.get('form')!r} has no health-record document")
    if not (record.get("values") or {}).get("visit_date"):
        raise StandardsError(f"follow-up {record.get('id')}: no visit_date")
    org = organization(clinic)
    pat = patient(resident, clinic, org)
    enc = _encounter(record, clinic, pat, org)
    values = record["values"]
    obs = [_observation(record, e, clinic, pat, enc) for e in el.MEASURED + el.CODED
           if values.get(e.field) not in (None, "")]
    from . import followup_sections
    obs += followup_sections.fhir_entries(record, clinic, pat, enc)   # lifestyle, medication, referral (§3b)
    comp = _composition("followup", record, doc_code, clinic, pat, org, record["saved_at"], obs, enc)
    return _bundle([comp, org, pat, enc, *obs])


def resident_bundle(resident: dict[str, Any], clinic: Clinic) -> dict:
    org = organization(clinic)
    pat = patient(resident, clinic, org, update=True)
    comp = _composition("resident", resident, el.HSDA00_01, clinic, pat, org,
                        resident.get("updated_at") or resident["created_at"], [])
    return _bundle([comp, org, pat])
