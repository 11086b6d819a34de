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

import base64
import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from edge.core import sealed

VERSION = 1
MAGIC = b"CEB1"
BUNDLE_MAGIC = b"CEBUNDLE1\n"
SIG_LEN = 64
MAX_HEADER = 4096
H_NODE, H_NONCE, H_TIME, H_SIG = "X-CE-Node", "X-CE-Nonce", "X-CE-Time", "X-CE-Signature"
H_AUTH = "X-CE-Auth"   # "<node> <nonce> <time> <signature>": the four above in one header (docs/api.md)
H_TOTAL, H_OFFSET = "X-CE-Total", "X-CE-Offset"
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class ProtocolError(Exception):
    """Bytes that are not a valid, correctly signed message. The message says what is wrong."""


class BadSignature(ProtocolError):
    pass


# ---- keys and signatures (docs/crypto-suites.md) --------------------------------------------
# Keys are edge.core.suites keys of either suite. Every signature is 64 bytes: Ed25519's own, or
# SM2's r | s (32 bytes each; GM/T 0009's DER form is rebuilt to verify). An object records its
# suite: the envelope header "s", a "sm:" tag before a request signature, a document's "suite";
# without one it is ed25519 (PINNED: what nodes and hubs before issue 21 send).

DEFAULT_SUITE = "ed25519"
SUITE_TAGS = {"sm": "sm:"}     # a public key's or request signature's text starts with it


def new_key(suite: str = DEFAULT_SUITE):
    return _suite(suite).generate()


def _suite(name: str):
    from edge.core import suites

    try:
        return suites.suite(name)
    except suites.SuiteError as e:
        raise ProtocolError(str(e)) from e


def save_key(key, path: Path) -> None:
    """Write a private key (PKCS#8 PEM) readable only by its owner (mode 0600), atomically."""
    from edge.core import durable

    durable.write_file(path, key.pem())


def load_key(path: Path):
    """The private key in `path`, of whichever suite it is (the PEM says which)."""
    from edge.core import suites

    pem = path.read_bytes()
    for name in suites.SUITES:
        try:
            return suites.suite(name).private_key(pem)
        except suites.SuiteError:
            continue
    raise ProtocolError(f"{path} is not an Ed25519 or SM2 private key")


def _public(key):
    return key.public_key() if hasattr(key, "sign") else key


def _raw_public(pub) -> bytes:
    if pub.suite == "sm":
        return pub.point()
    return pub.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_text(key) -> str:
    """ed25519: base64url of the 32 raw bytes (as always); sm: "sm:" + base64url of 04|x|y."""
    pub = _public(key)
    return SUITE_TAGS.get(pub.suite, "") + b64(_raw_public(pub))


def text_suite(text: str) -> str:
    """The suite of a public key's (or a request signature's) text, by its tag."""
    for name, tag in SUITE_TAGS.items():
        if text.startswith(tag):
            return name
    return DEFAULT_SUITE


def public_from_text(text: str):
    from edge.core import suites

    name = text_suite(text)
    try:
        raw = unb64(text[len(SUITE_TAGS.get(name, "")):])
        if name == "sm":
            from edge.core.suites import sm2
            try:
                return sm2.SM2PublicKey.from_point(raw)
            except sm2.SM2Error as e:
                raise ProtocolError(f"not an SM2 public key: {e}") from e
        return suites.ed25519_public(raw)
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"not an Ed25519 public key: {e}") from e


def fingerprint(key) -> str:
    """The hub key's fingerprint county IT hands to each node, hex: SHA-256 of the raw Ed25519 key,
    SM3 of the SM2 point (64 hex digits either way)."""
    pub = _public(public_from_text(key) if isinstance(key, str) else key)
    return _suite(pub.suite).digest(_raw_public(pub)).hex()


def normal_fingerprint(text: str) -> str:
    """A fingerprint as typed (any case, with or without "sha256:"/"sm3:", colons, spaces or dashes)."""
    t = text.strip().lower()
    t = re.sub(r"^(sha256|sm3):", "", t)
    t = re.sub(r"[\s:-]", "", t)
    if not re.fullmatch(r"[0-9a-f]{64}", t):
        raise ProtocolError(f"{text!r} is not a hub key fingerprint (64 hex digits from `hub node add`)")
    return t


def sign(key, data: bytes) -> bytes:
    """The 64-byte signature of `data` by `key` in the key's suite."""
    sig = key.sign(data)
    if key.suite == "sm":
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(sig)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return sig


def verify(pub, signature: bytes, data: bytes, suite: str | None = None) -> None:
    """BadSignature unless `signature` is `pub`'s over `data`; `suite`, when the object names one,
    must be the key's (a wrong suite is refused as such, not tried)."""
    if suite is not None and suite != pub.suite:
        raise BadSignature(f"signed in the {suite} suite, but the key is {pub.suite}")
    if len(signature) != SIG_LEN:
        raise BadSignature(f"a signature is {SIG_LEN} bytes, not {len(signature)}")
    if pub.suite == "sm":
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        signature = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    if not pub.verify(signature, data):
        raise BadSignature("signature does not match")


CODE_PREFIXES = {"sm": "SM-"}   # an enrollment code for the sm suite starts with it (the node makes an SM2 key)


def code_suite(code: str) -> str:
    """The suite an enrollment code is for: "SM-ABCD-..." is sm, a code without a prefix ed25519."""
    c = code.strip().upper()
    for name, prefix in CODE_PREFIXES.items():
        if c.startswith(prefix):
            return name
    return DEFAULT_SUITE


def signature_text(suite: str, sig: bytes) -> str:
    return SUITE_TAGS.get(suite, "") + b64(sig)


def read_signature_text(text: str) -> tuple[str, bytes]:
    """(suite, signature) of a request signature's text; an unknown tag is a ProtocolError."""
    if ":" in text and text_suite(text) == DEFAULT_SUITE:
        raise ProtocolError(f"signature tag {text.split(':')[0]!r} names no known suite (ed25519 has none, sm is 'sm:')")
    name = text_suite(text)
    return name, unb64(text[len(SUITE_TAGS.get(name, "")):])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise ProtocolError("bad base64") from e


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def utc_now_iso(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- requests and responses ------------------------------------------------------------------

def _body_digest(body: bytes, suite: str) -> bytes:
    """A signed request's or answer's body hash: the suite's (SHA-256, or SM3 for sm)."""
    digest = hashlib.sha256(body).digest() if suite == DEFAULT_SUITE else _suite(suite).digest(body)
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


# ---- columnar record codec ---------------------------------------------------------------------
# Records of one kind share keys, and most values repeat (device, code, unit, boot id) or grow
# slowly (times). Per kind: ids, versions, one column per payload key, each column stored as
# "same as the record id", delta-coded milliseconds, a dictionary, or raw values; then zlib with
# a preset dictionary (RECORDS_DICT).

def encode_records(records: list[dict[str, Any]]) -> bytes:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["kind"], []).append(r)
    doc = [_encode_group(kind, rows) for kind, rows in groups.items()]
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, RECORDS_DICT)
    return z.compress(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()) + z.flush()


# A preset zlib dictionary (RFC 1950 section 2.2, FDICT): the column markers, reading field names,
# codes, units and words every batch repeats, so a batch of one reading is about half as large
# (a sync cycle that sends one reading, issue 17.4). The zlib stream names its dictionary by
# Adler-32, so a batch says itself which one it needs; batches without one (nodes before this
# change) decode as before. Never edit these bytes: a new dictionary gets a new name in DICTIONARIES.
RECORDS_DICT = b"".join(json.dumps(w, separators=(",", ":")).encode() for w in (
    "follow_up", "resident", "referral", "report", "rejected", "voided", "serial", "ble", "senml", "astm",
    "no_value_reason", "meta", "source_key", "%", "kg", "mmol/L", "/min", "2708-6", "29463-7", "2339-0",
    "8867-4", "8462-4", "8480-6", "mm[Hg]", "valid", "mqtt", "ok", "clock_status", "transport", "status",
    "reason", "resident_id")) + (
    b'{"t":"raw","x":[{"t":"ts","d":[{"t":"dict","s":[null],"x":0},{"t":"dict","s":["'
    b'[{"k":"reading","i":["r-01","v":1,"f":["id","device_id","code","value","unit","device_time",'
    b'"receive_time","effective_time","boot_id","monotonic","clock_status","transport","status","reason",'
    b'"resident_id"],"c":[{"t":"id"},{"t":"dict","s":["')
DICTIONARIES = {zlib.adler32(RECORDS_DICT): RECORDS_DICT}


def _records_inflater(payload: bytes):
    """A decompressor for a batch's records, with the preset dictionary its zlib header names."""
    if len(payload) >= 6 and payload[1] & 0x20:
        zdict = DICTIONARIES.get(struct.unpack(">I", payload[2:6])[0])
        if zdict is None:
            raise ProtocolError("batch records need a zlib dictionary this hub does not know (a newer node?)")
        return zlib.decompressobj(zdict=zdict)
    return zlib.decompressobj()


def _encode_group(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [r["id"] for r in rows]
    versions = [r["version"] for r in rows]
    keys: list[str] = []
    for r in rows:
        for k in r["payload"]:
            if k not in keys:
                keys.append(k)
    cols = []
    for k in keys:
        values = [r["payload"].get(k, _MISSING) for r in rows]
        cols.append(_encode_column(values, ids))
    v = versions[0] if len(set(versions)) == 1 else versions
    group = {"k": kind, "i": ids, "v": v, "f": keys, "c": cols}
    return _time_ids(group, rows) or group


# Reading ids are "r-" + the device time in hex milliseconds + a 20-hex digest (edge.core.reading):
# the time is already in the device_time column, so a kind whose ids all have that form sends only
# the digests ("j") and the difference of each id's milliseconds from device_time ("jd", left out
# when all are 0). A hub before this form finds no "i" list and refuses the batch instead of storing
# other ids; every id is rebuilt here and compared before this form is chosen.
TIME_ID = re.compile(r"r-([0-9a-f]{12})([0-9a-f]{20})")
TIME_FIELD = "device_time"


def _time_ids(group: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    digests, deltas = [], []
    for r in rows:
        m = TIME_ID.fullmatch(r["id"]) if isinstance(r["id"], str) else None
        dt = r["payload"].get(TIME_FIELD)
        if m is None or not (isinstance(dt, str) and ISO_MS.fullmatch(dt)):
            return None
        digests.append(m.group(2))
        deltas.append(int(m.group(1), 16) - _to_ms(dt))
    compact = {k: v for k, v in group.items() if k != "i"}
    compact.update({"j": digests, "jt": TIME_FIELD, **({"jd": deltas} if any(deltas) else {})})
    try:
        if _rebuilt_ids(compact) != group["i"]:
            return None
    except (ValueError, ProtocolError):
        return None
    return compact


def _rebuilt_ids(g: dict[str, Any]) -> list[str]:
    """The ids of a group in the compact form (see _time_ids)."""
    digests, n = g["j"], len(g["j"])
    deltas = g.get("jd", [0] * n)
    col = g["c"][g["f"].index(g["jt"])]
    if col.get("t") != "ts" or col.get("m") or len(deltas) != n or len(col.get("d", [])) != n:
        raise ProtocolError("compact ids need a complete time column")
    out = []
    for digest, delta, when in zip(digests, deltas, _decode_column(col, [""] * n), strict=True):
        ms = _to_ms(when) + int(delta)
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{20}", digest)) or not 0 <= ms < 16 ** 12:
            raise ProtocolError("a compact id is malformed")
        out.append(f"r-{ms:012x}{digest}")
    return out


class _Missing:
    pass


_MISSING = _Missing()


def _encode_column(values: list[Any], ids: list[str]) -> dict[str, Any]:
    col: dict[str, Any] = {}
    missing = [i for i, v in enumerate(values) if v is _MISSING]
    if missing:
        col["m"] = missing
    present = [v for v in values if v is not _MISSING]
    present_ids = [ids[i] for i, v in enumerate(values) if v is not _MISSING]
    if present == present_ids:
        col["t"] = "id"
    elif present and all(v is None or (isinstance(v, str) and ISO_MS.fullmatch(v)) for v in present) \
            and any(v is not None for v in present):
        col["t"], col["d"] = "ts", _delta_ms(present)
    elif _dictionary_worth_it(present):
        distinct: list[Any] = []
        index: dict[str, int] = {}
        idx = []
        for v in present:
            key = json.dumps(v)
            if key not in index:
                index[key] = len(distinct)
                distinct.append(v)
            idx.append(index[key])
        col["t"], col["s"] = "dict", distinct
        col["x"] = idx[0] if len(distinct) == 1 else idx
    else:
        col["t"], col["x"] = "raw", present
    return col


def _dictionary_worth_it(values: list[Any]) -> bool:
    if not values or not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
        return False
    return len({json.dumps(v) for v in values}) <= max(1, len(values) // 3)


def _to_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(round(dt.timestamp() * 1000))


def _from_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _delta_ms(values: list[str | None]) -> list[int | None]:
    out, prev = [], 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        ms = _to_ms(v)
        out.append(ms - prev)
        prev = ms
    return out


# What one batch may hold, checked before anything is built per record (a batch of a few
# kilobytes could otherwise describe a hundred million cells). The node's largest batch is
# [sync] batch_max_records (at most 20000); a refused batch is TooBig, which the hub answers
# with 413 so the node splits it (sync/client/controller.py).
MAX_RECORDS = 20000
MAX_COLUMNS = 256            # payload keys of one kind
MAX_CELLS = 500_000          # records x columns, summed over the kinds of a batch
MAX_EXPANDED = 16 << 20      # bytes of JSON after zlib
MAX_JSON_VALUES = 1_000_000  # bounds what json.loads builds (counted as separators, a cheap upper bound)
MAX_DEPTH = 32               # nesting of objects and arrays in one record's payload


class TooBig(ProtocolError):
    """A well-formed batch that is larger than the hub decodes; send it in smaller batches."""


def decode_records(payload: bytes, max_bytes: int = MAX_EXPANDED) -> list[dict[str, Any]]:
    """The inverse of encode_records; ProtocolError on anything malformed, TooBig over the limits."""
    try:
        d = _records_inflater(payload)
        text = d.decompress(payload, max_bytes)
        if d.unconsumed_tail:
            raise TooBig(f"batch expands beyond {max_bytes} bytes; send smaller batches")
        check_json_size(text)
        doc = json.loads(text)
        if not isinstance(doc, list):
            raise ProtocolError("batch records must be a list of kinds")
        _check_shape(doc)
        out = []
        for group in doc:
            out.extend(_decode_group(group))
        return out
    except ProtocolError:
        raise
    except RecursionError as e:
        raise ProtocolError("batch records are nested too deeply") from e
    except (zlib.error, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, OSError) as e:
        raise ProtocolError(f"batch records cannot be decoded: {e.__class__.__name__}: {e}") from e


def check_json_size(text: bytes, *, max_values: int = MAX_JSON_VALUES) -> None:
    """Refuse JSON text with too many values before it is parsed. Separators are counted on the
    raw bytes (also inside strings), an upper bound: a legitimate batch is far below it."""
    if text.count(b",") + text.count(b":") > max_values:
        raise TooBig(f"batch holds more than {max_values} values; send smaller batches")


def nesting(value: Any) -> int:
    """How deeply objects and arrays nest in a decoded JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, depth)
            stack.extend((x, depth + 1) for x in v if isinstance(x, (dict, list)))
    return deepest


def _check_shape(doc: list[Any]) -> None:
    """Count records and columns per kind and their product before decoding any column."""
    records = cells = 0
    for g in doc:
        if isinstance(g, dict) and "i" not in g and isinstance(g.get("j"), list):
            g["i"] = g["j"]      # counted here; the ids themselves are rebuilt in _decode_group
        if not isinstance(g, dict) or not isinstance(g.get("i"), list) or not isinstance(g.get("f"), list) \
                or not isinstance(g.get("c"), list):
            raise ProtocolError("each kind needs lists i (ids), f (fields) and c (columns)")
        if len(g["f"]) > MAX_COLUMNS or len(g["c"]) > MAX_COLUMNS:
            raise TooBig(f"a kind with more than {MAX_COLUMNS} fields; send smaller batches")
        records += len(g["i"])
        cells += len(g["i"]) * max(len(g["f"]), len(g["c"]))
    if records > MAX_RECORDS:
        raise TooBig(f"batch holds {records} records, more than {MAX_RECORDS}; send smaller batches")
    if cells > MAX_CELLS:
        raise TooBig(f"batch holds {cells} record fields, more than {MAX_CELLS}; send smaller batches")


def _decode_group(g: dict[str, Any]) -> list[dict[str, Any]]:
    if "j" in g:
        if g.get("jt") not in g["f"]:
            raise ProtocolError("compact ids name no time field")
        g = {**g, "i": _rebuilt_ids(g)}
    ids, n = g["i"], len(g["i"])
    versions = g["v"] if isinstance(g["v"], list) else [g["v"]] * n
    if len(versions) != n:
        raise ProtocolError("version column length does not match")
    payloads: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, col in zip(g["f"], g["c"], strict=True):
        missing = set(col.get("m", []))
        rows = [i for i in range(n) if i not in missing]
        for i, v in zip(rows, _decode_column(col, [ids[i] for i in rows]), strict=True):
            payloads[i][key] = v
    return [{"kind": g["k"], "id": ids[i], "version": versions[i], "payload": payloads[i]} for i in range(n)]


def _decode_column(col: dict[str, Any], ids: list[str]) -> list[Any]:
    t = col["t"]
    if t == "id":
        return list(ids)
    if t == "ts":
        out, prev = [], 0
        for d in col["d"]:
            if d is None:
                out.append(None)
                continue
            prev += int(d)
            out.append(_from_ms(prev))
        return out
    if t == "dict":
        x = col["x"]
        idx = [x] * len(ids) if isinstance(x, int) else x
        return [col["s"][i] for i in idx]
    if t == "raw":
        return list(col["x"])
    raise ProtocolError(f"unknown column type {t!r}")


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks (update bundles are tens of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
