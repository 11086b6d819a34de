"""Keys and signatures of both crypto suites (docs/crypto-suites.md), and their text forms.

Keys are edge.core.suites keys of either suite. Every signature is 64 bytes: Ed25519's own, or
SM2's r | s (32 bytes each; GM/T 0009's DER form is rebuilt to verify). An object records its
suite: the envelope header "s", a "sm:" tag before a request signature, a document's "suite";
without one it is ed25519 (PINNED: what nodes and hubs before issue 21 send).
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from .errors import BadSignature, ProtocolError

SIG_LEN = 64
DEFAULT_SUITE = "ed25519"
SUITE_TAGS = {"sm": "sm:"}     # a public key's or request signature's text starts with it


def new_key(suite: str = DEFAULT_SUITE):
    return suite_for(suite).generate()


def suite_for(name: str):
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
    return suite_for(pub.suite).digest(_raw_public(pub)).hex()


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
