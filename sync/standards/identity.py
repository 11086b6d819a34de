"""Who sends (the clinic) and the stable ids every document and resource carries.

A document's id is a name-based UUID (RFC 4122 version 5) of (clinic, kind, record id, version):
the same record version always becomes the same 文档流水号 and the same FHIR ids, on the hub and
on a node, so a platform that keys on them never stores a resend twice (docs/interop.md §4)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/clinic-edge/clinic-edge/standards")


@dataclass(frozen=True)
class Clinic:
    node: str                 # the node's name on the hub
    name: str                 # the clinic's name (村卫生室), the documents' custodian
    code: str = ""            # the clinic's organisation code at the county; the node name if unset

    def __post_init__(self):
        if not self.code:
            object.__setattr__(self, "code", self.node)


def document_id(kind: str, record_id: str, version: int, clinic: Clinic) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{clinic.node}/{kind}/{record_id}/{int(version)}"))


def resource_id(clinic: Clinic, *parts: object) -> str:
    """A FHIR id (<= 64 chars of [A-Za-z0-9-.]) stable for these parts."""
    return str(uuid.uuid5(NAMESPACE, "/".join([clinic.node, *map(str, parts)])))


def hl7_time(iso: str) -> str:
    """An ISO 8601 UTC time (our records' `saved_at`) as an HL7 TS: YYYYMMDDHHMMSS+0000."""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc)
    return t.strftime("%Y%m%d%H%M%S+0000")


def fhir_time(iso: str) -> str:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
