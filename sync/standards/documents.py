"""One record in, its standard documents out: what the forwarder (sync/hub/forwarding.py) and a
node sending directly call. `documents_for` names the kinds that have documents."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import ResidentMissing, StandardsError, cda, elements as el, fhir, healthcheck
from .identity import Clinic, document_id

KINDS = ("followup", "resident", "health_check")


@dataclass(frozen=True)
class Document:
    doc_id: str               # 文档流水号 / the Composition id: stable per (clinic, kind, record, version)
    cda: bytes                # the WS/T 483 CDA R2 XML
    fhir: bytes               # the FHIR R4 transaction Bundle as JSON


def has_documents(kind: str) -> bool:
    return kind in KINDS


def _followup_shape(record: dict[str, Any]) -> None:
    """What a follow-up itself must have, checked before its resident is looked for."""
    if record.get("form") not in el.FORM_DOCUMENT:
        raise StandardsError(f"follow-up {record.get('id')}: form {record.get('form')!r} has no WS/T 483 document")
    if not isinstance(record.get("values"), dict) or not record["values"].get("visit_date"):
        raise StandardsError(f"follow-up {record.get('id')}: no visit_date")


def build(kind: str, record: dict[str, Any], resident: dict[str, Any] | None, clinic: Clinic) -> Document:
    """StandardsError if the kind has no document or the record lacks what the standard needs."""
    if kind == "followup":
        _followup_shape(record)
        if resident is None:
            raise ResidentMissing(f"follow-up {record.get('id')}: this sender has no record of resident "
                                 f"{record.get('resident_id')} yet")
        xml, bundle = cda.followup_document(record, resident, clinic), fhir.followup_bundle(record, resident, clinic)
    elif kind == healthcheck.KIND:
        healthcheck.check_shape(record)
        if resident is None:
            raise ResidentMissing(f"health check {record.get('id')}: this sender has no record of resident "
                                 f"{record.get('resident_id')} yet")
        xml, bundle = healthcheck.document(record, resident, clinic), healthcheck.bundle(record, resident, clinic)
    elif kind == "resident":
        xml, bundle = cda.resident_document(record, clinic), fhir.resident_bundle(record, clinic)
    else:
        raise StandardsError(f"records of kind {kind!r} have no standard document (only {', '.join(KINDS)})")
    body = json.dumps(bundle, ensure_ascii=False, sort_keys=True).encode()
    return Document(document_id(kind, record["id"], record["version"], clinic), xml, body)
