"""Our records as the national standards' documents (docs/interop.md): WS/T 483 health-record
sharing documents (CDA R2 XML) and FHIR R4 transaction Bundles.

Pure functions from a record's payload (what the node sends, edge/core/followup/records.py and
edge/core/residents.py) to a document: no I/O, no clock (the record's own times are used), so the
hub (sync/hub/forwarding.py) and a node that sends directly build byte-identical documents, and a
document's id is stable per record version (a resend is the same document).
"""
from __future__ import annotations


class StandardsError(ValueError):
    """A record cannot become a standard document (its kind, or a value the standard needs, is missing)."""


class ResidentMissing(StandardsError):
    """A follow-up or health check whose resident the sender has not stored yet: it may still
    become a document once the resident arrives (a forwarder retries it)."""
