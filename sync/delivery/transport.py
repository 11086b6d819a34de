"""How a document reaches a county platform (docs/interop.md §5): a FHIR transaction POST, a CDA
document POST, or a file dropped in a 前置机's (front-end machine's) directory. Used by the hub's
forwarder (sync/hub/forwarding.py) and by a node that sends directly (sync/client/direct.py).

Each send answers an Outcome: delivered; refused (the platform said no: a 4xx with its reason; the
same document would be refused again, so it is not retried); or retry (the platform or the link is
down: 5xx, 408, 429, a timeout or a refused connection). `opener` is urllib's, passed in for tests.
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sync.standards.documents import Document

KINDS = ("fhir", "cda", "drop")
REASON_CHARS = 500
TIMEOUT = 30
TRANSIENT = {408, 425, 429}


@dataclass(frozen=True)
class Outcome:
    state: str                  # delivered, refused, retry
    reason: str | None = None


def target_problem(kind: str, target: str) -> str | None:
    """What is wrong with a profile's kind and target, said so a person can fix it; None if nothing."""
    if kind not in KINDS:
        return f"kind: one of {', '.join(KINDS)}, not {kind!r}"
    if kind in ("fhir", "cda") and not re.match(r"https?://[^/\s]+", target):
        return f"target: an http(s):// URL for a {kind} profile, not {target!r}"
    if kind == "drop" and not target.startswith("/"):
        return f"target: an absolute directory for a drop profile, not {target!r}"
    return None


def send(kind: str, target: str, doc: Document, *, opener=urllib.request.urlopen) -> Outcome:
    if kind == "fhir":
        return _post(target, doc.fhir, "application/fhir+json; charset=utf-8", doc.doc_id, opener)
    if kind == "cda":
        return _post(target, doc.cda, "application/xml; charset=utf-8", doc.doc_id, opener)
    if kind == "drop":
        return _drop(Path(target), doc)
    raise ValueError(f"unknown outbound kind {kind!r}; allowed: {', '.join(KINDS)}")


def _post(url: str, body: bytes, content_type: str, doc_id: str, opener) -> Outcome:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": content_type, "Accept": "application/fhir+json, application/json, */*",
        "X-Document-Id": doc_id})
    try:
        with opener(req, timeout=TIMEOUT) as resp:
            resp.read()
            return Outcome("delivered")
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code}: {_reason(e.read())}"
        if e.code >= 500 or e.code in TRANSIENT:
            return Outcome("retry", reason)
        return Outcome("refused", reason)
    except (urllib.error.URLError, OSError) as e:
        return Outcome("retry", f"{url}: {getattr(e, 'reason', e)}"[:REASON_CHARS])


def _reason(body: bytes) -> str:
    """The platform's own words: an OperationOutcome's diagnostics, a JSON error, or the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:REASON_CHARS] or "(no reason given)"
    if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
        parts = [i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code", "")
                 for i in doc.get("issue", []) if isinstance(i, dict)]
        return "; ".join(p for p in parts if p)[:REASON_CHARS] or "(no reason given)"
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"][:REASON_CHARS]
    return text[:REASON_CHARS]


def _drop(folder: Path, doc: Document) -> Outcome:
    """{folder}/{doc_id}.xml, written whole (temporary file, fsync, rename): the 前置机 never picks up
    half a file, and a resend replaces the file with the same bytes under the same name."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{doc.doc_id}.xml"
        tmp = folder / f".{doc.doc_id}.xml.part"
        with open(tmp, "wb") as f:
            f.write(doc.cda)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        return Outcome("retry", f"{folder}: {e.strerror or e}")
    return Outcome("delivered")
