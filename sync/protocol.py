"""The sync wire format, shared by the node's client and the county hub.

Three signed things travel:

* a **batch envelope** (node -> hub, also what a USB bundle holds): ``b"CEB1"``, a 2-byte header
  length, the canonical header JSON, a 64-byte signature by the node key (Ed25519, or SM2 r|s when the
  header says "s": "sm"), then the
  compressed columnar records. The signature covers everything except itself, so a batch can be
  verified wherever it turns up (HTTP upload or bundle) and resent unchanged after a lost receipt.
* a **request** signature (headers ``X-CE-Node/-Nonce/-Time/-Signature``) over method, path,
  node, a fresh nonce, the node's time and the body's SHA-256: the hub refuses a nonce it has
  seen (replay) and any request from a key it does not know.
* a **response** signature by the hub key over the request's nonce and the response body, so the
  node learns the hub's time (and receipts, downlink pages) only from an authenticated answer
  that cannot be an old one replayed.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.core import sealed

from .errors import BadSignature, ProtocolError, TooBig  # noqa: F401  (the wire format's errors)
from .signing import (DEFAULT_SUITE, SIG_LEN, SUITE_TAGS, b64, public_from_text, sign, signature_text, suite_for,
                      unb64, verify)
from .record_codec import MAX_RECORDS, encode_records

VERSION = 1
MAGIC = b"CEB1"
BUNDLE_MAGIC = b"CEBUNDLE1\n"
MAX_HEADER = 4096
H_NODE, H_NONCE, H_TIME, H_SIG = "X-CE-Node", "X-CE-Nonce", "X-CE-Time", "X-CE-Signature"
H_AUTH = "X-CE-Auth"   # "<node> <nonce> <time> <signature>": the four above in one header (docs/api.md)
H_TOTAL, H_OFFSET = "X-CE-Total", "X-CE-Offset"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def utc_now_iso(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- requests and responses ------------------------------------------------------------------

def _body_digest(body: bytes, suite: str) -> bytes:
    """A signed request's or answer's body hash: the suite's (SHA-256, or SM3 for sm)."""
    digest = hashlib.sha256(body).digest() if suite == DEFAULT_SUITE else suite_for(suite).digest(body)
    return digest.hex().encode()


def request_bytes(method: str, path: str, node: str, nonce: str, sent_at: str, body: bytes,
                  suite: str = DEFAULT_SUITE) -> bytes:
    """What a request signature covers."""
    return b"\n".join([b"CE-REQ-1", method.upper().encode(), path.encode(), node.encode(), nonce.encode(),
                       sent_at.encode(), _body_digest(body, suite)])


def response_bytes(nonce: str, body: bytes, suite: str = DEFAULT_SUITE) -> bytes:
    """What the hub's answer signature covers: the request's nonce and the answer's body hash."""
    return b"\n".join([b"CE-RESP-1", nonce.encode(), _body_digest(body, suite)])


def sign_request(key, method: str, path: str, node: str, nonce: str, sent_at: str,
                 body: bytes) -> dict[str, str]:
    """The request's signature as one compact header (node names, nonces, times and base64url
    have no spaces); hubs also take the four separate headers older nodes send. An sm key's
    signature is tagged "sm:" (3 bytes); an ed25519 one is untagged, as before."""
    sig = sign(key, request_bytes(method, path, node, nonce, sent_at, body, key.suite))
    return {H_AUTH: f"{node} {nonce} {sent_at} {signature_text(key.suite, sig)}"}


def request_auth(headers) -> tuple[str, str, str, str]:
    """(node, nonce, time, signature) of a signed request, from X-CE-Auth or the four headers;
    empty strings for what is missing (the hub refuses it and says which)."""
    compact = headers.get(H_AUTH, "")
    if compact:   # only the time may hold a space (a wrong one, which the hub then explains)
        parts = compact.split(" ")
        if len(parts) < 4:
            return ("", "", "", "")
        return parts[0], parts[1], " ".join(parts[2:-1]), parts[-1]
    return tuple(headers.get(h, "") for h in (H_NODE, H_NONCE, H_TIME, H_SIG))   # type: ignore[return-value]


# ---- signed documents (receipts) -------------------------------------------------------------

def sign_document(key, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` signed by `key`; an sm signature's document says "suite": "sm" (signed with it)."""
    body = {k: v for k, v in doc.items() if k not in ("sig", "suite")}
    if key.suite != DEFAULT_SUITE:
        body["suite"] = key.suite
    return {**body, "sig": b64(sign(key, b"CE-DOC-1\n" + canonical(body)))}


def verify_document(pub, doc: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("sig"), str):
        raise BadSignature("document is not signed")
    body = {k: v for k, v in doc.items() if k != "sig"}
    verify(pub, unb64(doc["sig"]), b"CE-DOC-1\n" + canonical(body), body.get("suite", DEFAULT_SUITE))
    return body


# ---- compact receipts (issue 17.4; docs/api.md, "Uploads") ----------------------------------
# A node that uploads by /v2/u/ gets its receipt as the answer itself, signed once: the hub's
# answer signature covers the node's name and the batch id (both known to the node, so neither
# travels), the request's nonce and the answer's body. The node keeps nonce, body and signature
# as its proof that the hub stored the batch (verify_receipt_proof). Uploads by /v1/uploads/
# (nodes before this) are answered as before: the full receipt, a signed document of its own.

RECEIPT_TAG = b"CE-RCPT-2"


def receipt_bytes(node: str, batch: str, nonce: str, body: bytes, suite: str = DEFAULT_SUITE) -> bytes:
    """What the hub's one signature over an answer to a compact upload covers."""
    return b"\n".join([RECEIPT_TAG, node.encode(), batch.encode(), nonce.encode(), _body_digest(body, suite)])


def compact_receipt(receipt: dict[str, Any]) -> dict[str, Any]:
    """Of the hub's stored receipt, what the node does not know already: how many records were
    new to the hub ("s") and, only when there are any, the rejected ones ("x": kind, id, version,
    reason)."""
    out: dict[str, Any] = {"s": receipt["stored"]}
    if receipt.get("rejected"):
        out["x"] = [[r["kind"], r["id"], r["version"], r["reason"]] for r in receipt["rejected"]]
    return out


def read_compact_receipt(doc: Any) -> dict[str, Any]:
    """{"stored", "rejected": [{kind, id, version, reason}]} of a compact receipt; ProtocolError if malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("s"), int) or not isinstance(doc.get("x", []), list):
        raise ProtocolError("a compact receipt is {\"s\": stored, \"x\": [rejected]}")
    rejected = []
    for r in doc.get("x", []):
        if not (isinstance(r, list) and len(r) == 4):
            raise ProtocolError("a rejected record in a compact receipt is [kind, id, version, reason]")
        rejected.append(dict(zip(("kind", "id", "version", "reason"), r)))
    return {"stored": doc["s"], "rejected": rejected}


def verify_receipt_proof(pub, node: str, batch: str, proof: dict[str, Any]) -> dict[str, Any]:
    """The receipt a kept proof ({"nonce", "body", "sig"}, as the node stores it) holds, once its
    signature checks out as the hub's over this node's batch; BadSignature or ProtocolError else."""
    try:
        body = proof["body"].encode()
        verify(pub, unb64(proof["sig"]), receipt_bytes(node, batch, proof["nonce"], body, pub.suite))
        return read_compact_receipt(json.loads(body)["r"])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ProtocolError(f"not a receipt proof: {e.__class__.__name__}: {e}") from e


# ---- batch envelopes -------------------------------------------------------------------------

@dataclass(frozen=True)
class Envelope:
    header: dict[str, Any]
    signature: bytes
    payload: bytes
    raw: bytes

    @property
    def node(self) -> str:
        return self.header["node"]

    @property
    def batch_id(self) -> str:
        return self.header["batch"]

    @property
    def suite(self) -> str:
        return self.header.get("s", DEFAULT_SUITE)

    def signed_bytes(self) -> bytes:
        return signed_part(self.raw)

    def verify(self, pub) -> None:
        verify(pub, self.signature, self.signed_bytes(), self.suite)


def signed_part(raw: bytes) -> bytes:
    hlen = struct.unpack(">H", raw[4:6])[0]
    return raw[:6 + hlen] + raw[6 + hlen + SIG_LEN:]


def seal(key, header: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    suite = {} if key.suite == DEFAULT_SUITE else {"s": key.suite}
    hbytes = canonical({**header, **suite, "v": VERSION})
    if len(hbytes) > MAX_HEADER:
        raise ProtocolError("batch header too large")
    payload = encode_records(records)
    head = MAGIC + struct.pack(">H", len(hbytes)) + hbytes
    return head + sign(key, head + payload) + payload


def open_envelope(raw: bytes) -> Envelope:
    """Parse (not verify) an envelope; raises ProtocolError on anything malformed."""
    if len(raw) < 6 + SIG_LEN or raw[:4] != MAGIC:
        raise ProtocolError("not a clinic-edge batch (bad magic or too short)")
    hlen = struct.unpack(">H", raw[4:6])[0]
    if hlen > MAX_HEADER or len(raw) < 6 + hlen + SIG_LEN:
        raise ProtocolError("batch header length is wrong")
    try:
        header = json.loads(raw[6:6 + hlen])
    except ValueError as e:
        raise ProtocolError(f"batch header is not JSON: {e}") from e
    need = {"v": int, "node": str, "batch": str, "from": int, "to": int, "n": int}
    for k, t in need.items():
        if not isinstance(header, dict) or not isinstance(header.get(k), t):
            raise ProtocolError(f"batch header lacks {k}")
    if not 0 <= header["n"] <= MAX_RECORDS:
        raise TooBig(f"batch says {header['n']} records; at most {MAX_RECORDS} per batch, send smaller batches")
    if header.get("s", DEFAULT_SUITE) not in (DEFAULT_SUITE, *SUITE_TAGS):
        raise ProtocolError(f"batch is signed in suite {header['s']!r}, which this hub does not know")
    if header["v"] != VERSION:
        raise ProtocolError(f"batch format version {header['v']} is not supported (this hub speaks {VERSION})")
    return Envelope(header, raw[6 + hlen:6 + hlen + SIG_LEN], raw[6 + hlen + SIG_LEN:], raw)


def write_bundle(envelopes: list[bytes]) -> bytes:
    return BUNDLE_MAGIC + b"".join(struct.pack(">I", len(e)) + e for e in envelopes)


USB_PURPOSE = "usb-bundle"


def seal_bundle(hub_pubkey: str, bundle: bytes) -> bytes:
    """A USB bundle encrypted to the hub's key (edge.core.sealed; the batches inside stay signed):
    X25519 from the Ed25519 key, or SM2 + SM4-GCM to the hub's SM2 key."""
    pub = public_from_text(hub_pubkey)
    recipient = pub if pub.suite == "sm" else sealed.x25519_public_from_ed25519(pub.key)
    return sealed.seal(recipient, bundle, USB_PURPOSE)


def open_bundle(hub_keys, data: bytes) -> list[bytes]:
    """The batches of a sealed (or, from a node before issue 13, plain) USB bundle; `hub_keys` is
    the hub's key or its keys of every suite (the bundle's magic says which one it was sealed to)."""
    keys = {k.suite: k for k in (hub_keys if isinstance(hub_keys, (list, tuple)) else [hub_keys])}
    want = {sealed.MAGIC: DEFAULT_SUITE, sealed.MAGIC_SM: "sm"}.get(data[:len(sealed.MAGIC)])
    if want is not None:
        if want not in keys:
            raise ProtocolError(f"the bundle is sealed to a {want} key and this hub has none")
        key = keys[want] if want == "sm" else sealed.x25519_private_from_ed25519(keys[want].key)
        try:
            data = sealed.unseal(key, data, USB_PURPOSE)
        except sealed.SealError as e:
            raise ProtocolError(f"cannot decrypt the bundle with this hub's key: {e}") from e
    return read_bundle(data)


def read_bundle(data: bytes) -> list[bytes]:
    if not data.startswith(BUNDLE_MAGIC):
        raise ProtocolError("not a clinic-edge bundle file")
    out, pos = [], len(BUNDLE_MAGIC)
    while pos < len(data):
        if pos + 4 > len(data):
            raise ProtocolError("bundle is truncated")
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        if pos + 4 + n > len(data):
            raise ProtocolError("bundle is truncated")
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks (update bundles are tens of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
