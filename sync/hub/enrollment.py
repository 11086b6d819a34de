"""The hub's side of enrollment and certificate renewal (docs/tls.md).

The answer to an enrollment is signed by the hub key over the node's nonce, so a node that was
given the hub key's fingerprint knows who answered (and that the answer is fresh). It echoes the
node key it registered (a man in the middle that swapped it is caught) and carries the county
CA certificate and the node's certificate, issued for the key in the node's CSR.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sync import pki, protocol, signing

from .ca import CountyCA
from .service import Hub, HubError
from .storage import now_iso


class BadEnrollment(HubError):
    status = 400


def enroll(hub: Hub, ca: CountyCA | None, data: dict[str, Any], *, now: datetime,
           forbidden: set[str] = frozenset()) -> tuple[bytes, str]:
    """(JSON body, signature header) of the answer to POST /v1/enroll."""
    code, pubkey, nonce, csr = data.get("code"), data.get("pubkey"), data.get("nonce", ""), data.get("csr")
    if not isinstance(code, str) or not isinstance(pubkey, str):
        raise BadEnrollment("send {code, pubkey, nonce, csr}")
    if not isinstance(nonce, str) or (nonce and not re.fullmatch(r"[\w-]{16,64}", nonce)):
        raise BadEnrollment("nonce must be 16-64 letters, digits, '-' or '_'")
    if csr is not None and not isinstance(csr, str):
        raise BadEnrollment("csr must be a PEM certificate request")
    if csr is not None:
        pki.load_csr(csr)            # a bad CSR must not burn the one-time code
    doc = hub.enroll(code, pubkey, now=now)
    doc.update(pubkey=pubkey, nonce=nonce)
    if ca is not None:
        doc["ca_cert"] = ca.pem.decode()
        if csr is not None:
            doc["node_cert"] = ca.issue_node(csr, doc["node"], now=now, forbidden=forbidden).decode()
    body = json.dumps(doc, ensure_ascii=False).encode()
    return body, hub.sign_response(nonce, body, signing.code_suite(code))


def renew(ca: CountyCA | None, node: str, csr: Any, *, now: datetime, forbidden: set[str] = frozenset()
          ) -> dict[str, Any]:
    """What a signed hello that carries a CSR gets back: a new certificate for the same node."""
    if ca is None or not isinstance(csr, str):
        return {}
    try:
        return {"node_cert": ca.issue_node(csr, node, now=now, forbidden=forbidden).decode(),
                "ca_cert": ca.pem.decode(), "cert_issued_at": now_iso(now)}
    except protocol.ProtocolError as e:
        return {"cert_error": str(e)}
