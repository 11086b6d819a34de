"""WS/T 483 health-record sharing documents as CDA R2 XML (docs/interop.md §2).

`followup_document` makes HSDB04.01 / HSDB04.02 from a follow-up record, `resident_document`
makes HSDA00.01 from a resident record. The header carries 文档流水号 (the document id, stable per
record version), 健康档案编号 and 身份证号 with their OIDs, the author and the custodian (the clinic).
Each body entry is an observation coded with its WS 363 data element.
"""
from __future__ import annotations

from typing import Any

from lxml import etree

from . import StandardsError, elements as el
from .identity import Clinic, document_id, hl7_time

NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {None: NS, "xsi": XSI}


def _e(parent, tag: str, text: str | None = None, **attrs) -> etree._Element:
    node = etree.SubElement(parent, f"{{{NS}}}{tag}", {k: str(v) for k, v in attrs.items() if v not in (None, "")})
    if text is not None:
        node.text = text
    return node


def _xsi_type(node, value: str) -> None:
    node.set(f"{{{XSI}}}type", value)


def _header(kind: str, record: dict, doc_code: str, clinic: Clinic, resident: dict) -> etree._Element:
    root = etree.Element(f"{{{NS}}}ClinicalDocument", nsmap=NSMAP)
    _e(root, "realmCode", code="CN")
    _e(root, "typeId", root=el.CDA_TYPE_ID, extension="POCD_MT000040")
    _e(root, "id", root=el.DOC_SERIAL, extension=document_id(kind, record["id"], record["version"], clinic))
    _e(root, "code", code=doc_code, codeSystem=el.DOC_TYPES, codeSystemName="卫生信息共享文档规范编码体系",
       displayName=el.DOCUMENT_TITLES[doc_code])
    _e(root, "title", el.DOCUMENT_TITLES[doc_code])
    _e(root, "effectiveTime", value=hl7_time(record["at"]))
    _e(root, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25", codeSystemName="Confidentiality",
       displayName="正常访问保密级别")
    _e(root, "languageCode", code="zh-CN")
    _e(root, "setId", root=el.LOCAL_ROOT, extension=f"{clinic.node}/{kind}/{record['id']}")
    _e(root, "versionNumber", value=record["version"])
    _record_target(root, resident)
    _author(root, record, clinic)
    _custodian(root, clinic)
    return root


def _record_target(root, resident: dict) -> None:
    role = _e(_e(root, "recordTarget", typeCode="RCT", contextControlCode="OP"), "patientRole", classCode="PAT")
    if not resident.get("health_record_no"):
        raise StandardsError(f"resident {resident.get('id')} has no health-record number (健康档案编号)")
    _e(role, "id", root=el.RECORD_NO, extension=resident["health_record_no"])
    if resident.get("address"):
        _e(_e(role, "addr", use="H"), "streetAddressLine", resident["address"])
    if resident.get("phone"):
        _e(role, "telecom", value=f"tel:{resident['phone']}")
    patient = _e(role, "patient", classCode="PSN", determinerCode="INSTANCE")
    if resident.get("id_number"):
        _e(patient, "id", root=el.ID_CARD, extension=resident["id_number"])
    _e(patient, "name", resident.get("name") or "")
    sex = str(resident.get("sex") or "0")
    _e(patient, "administrativeGenderCode", code=sex, codeSystem=el.SEX_CODES, codeSystemName="生理性别代码表(GB/T 2261.1)",
       displayName=el.SEX_NAMES.get(sex, "未知的性别"))
    if resident.get("birth_date"):
        _e(patient, "birthTime", value=resident["birth_date"].replace("-", ""))


def _author(root, record: dict, clinic: Clinic) -> None:
    author = _e(root, "author", typeCode="AUT", contextControlCode="OP")
    _e(author, "time", value=hl7_time(record["at"]))
    assigned = _e(author, "assignedAuthor", classCode="ASSIGNED")
    who = record.get("author") or record.get("updated_by") or record.get("created_by") or "unknown"
    _e(assigned, "id", root=el.LOCAL_ROOT, extension=f"{clinic.node}/{who}")
    _e(_e(assigned, "assignedPerson", classCode="PSN", determinerCode="INSTANCE"), "name", who)


def _custodian(root, clinic: Clinic) -> None:
    org = _e(_e(_e(root, "custodian", typeCode="CST"), "assignedCustodian", classCode="ASSIGNED"),
             "representedCustodianOrganization", classCode="ORG", determinerCode="INSTANCE")
    _e(org, "id", root=el.LOCAL_ROOT, extension=clinic.code)
    _e(org, "name", clinic.name)


def _section(root, code: str, title: str) -> etree._Element:
    found = root.find(f"{{{NS}}}component/{{{NS}}}structuredBody")     # one body, one component per section
    body = found if found is not None else _e(_e(root, "component"), "structuredBody")
    section = _e(_e(body, "component"), "section")
    _e(section, "code", code=code, codeSystem="2.16.840.1.113883.6.1", codeSystemName="LOINC")
    _e(section, "title", title)
    return section


def _observation(section, element: el.Element) -> etree._Element:
    obs = _e(_e(section, "entry"), "observation", classCode="OBS", moodCode="EVN")
    _e(obs, "code", code=element.de, codeSystem=el.DE_CATALOG, codeSystemName="卫生信息数据元目录", displayName=element.zh)
    return obs


def _text(section, lines: list[str]) -> None:
    text = _e(section, "text")
    for line in lines:
        _e(text, "paragraph", line)


def followup_document(record: dict[str, Any], resident: dict[str, Any], clinic: Clinic) -> bytes:
    """HSDB04.01 (hypertension) or HSDB04.02 (type 2 diabetes) from a follow-up record's payload."""
    doc_code = el.FORM_DOCUMENT.get(record.get("form"))
    if doc_code is None:
        raise StandardsError(f"follow-up {record.get('id')}: form {record.get('form')!r} has no WS/T 483 document")
    values = record.get("values") or {}
    if not values.get("visit_date"):
        raise StandardsError(f"follow-up {record.get('id')}: no visit_date")
    root = _header("followup", {**record, "at": record["saved_at"]}, doc_code, clinic, resident)
    section = _section(root, "8716-3", "随访记录")
    _text(section, [f"{e.zh}: {values[e.field]}" for e in el.MEASURED + el.CODED if values.get(e.field) not in (None, "")])
    for e in el.MEASURED:
        if values.get(e.field) not in (None, ""):
            obs = _observation(section, e)
            _e(obs, "effectiveTime", value=values["visit_date"].replace("-", ""))
            value = _e(obs, "value", value=values[e.field], unit=e.ucum)
            _xsi_type(value, "PQ")
    for e in el.CODED:
        code = values.get(e.field)
        if code not in (None, ""):
            if str(code) not in el.VALUE_SETS[e.field]:
                raise StandardsError(f"follow-up {record.get('id')}: {e.field} code {code!r} is not in {e.zh}'s code list")
            obs = _observation(section, e)
            _e(obs, "effectiveTime", value=values["visit_date"].replace("-", ""))
            system, name = el.CODE_SYSTEMS[e.field]
            value = _e(obs, "value", code=code, codeSystem=system, codeSystemName=name,
                       displayName=el.VALUE_SETS[e.field][str(code)])
            _xsi_type(value, "CD")
    from . import followup_sections
    followup_sections.cda_sections(root, record)   # lifestyle, medication, referral (§3b)
    return serialize(root)


def resident_document(resident: dict[str, Any], clinic: Clinic) -> bytes:
    """HSDA00.01 (个人基本健康信息) from a resident record's payload."""
    root = _header("resident", {**resident, "at": resident.get("updated_at") or resident["created_at"]},
                   el.HSDA00_01, clinic, resident)
    section = _section(root, "29762-2", "个人基本信息")
    _text(section, [f"{resident.get('name') or ''}", f"健康档案编号: {resident['health_record_no']}"])
    return serialize(root)


def serialize(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
