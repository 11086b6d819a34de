"""Crypto suites: one interface for signatures, hashes, MACs and authenticated encryption (docs/crypto-suites.md).

Two suites. `ed25519` is what clinic-edge has always used and stays the default: Ed25519 signatures,
SHA-256, HMAC-SHA-256, AES-256-GCM. `sm` is the commercial-cryptography choice a county may make:
SM2 signatures with the GM/T 0009 user id (edge.core.suites.sm2, OpenSSL libcrypto), SM3, HMAC-SM3,
SM4-GCM (both from `cryptography`). A signed object records its suite's name, so a hub can hold
nodes of both and a county can move from one to the other while old objects still verify.
"""
from __future__ import annotations

import hmac as std_hmac
from dataclasses import dataclass
from typing import Callable, Protocol

# `cryptography` is imported where it is used: a node service that never seals or signs (ingest,
# and web on a node without field encryption) does not carry it (tests/test_service_imports.py).


class SuiteError(Exception):
    """An unknown suite name, a key of the wrong suite, or data that does not decrypt."""


class VerifyKey(Protocol):
    suite: str          # the suite's name, as recorded with what the key signs
    def verify(self, signature: bytes, data: bytes) -> bool: ...
    def pem(self) -> bytes: ...


class SigningKey(Protocol):
    suite: str
    def sign(self, data: bytes) -> bytes: ...
    def public_key(self) -> VerifyKey: ...
    def pem(self) -> bytes: ...


@dataclass(frozen=True)
class Suite:
    name: str
    key_bytes: int                                  # the AEAD key length
    _generate: Callable[[], SigningKey]
    _private: Callable[[bytes], SigningKey]
    _public: Callable[[bytes], VerifyKey]
    hash_name: str                                  # a cryptography.hazmat.primitives.hashes class
    cipher_name: str                                # a ...ciphers.algorithms class (a 128-bit block)

    def generate(self) -> SigningKey:
        return self._generate()

    def private_key(self, pem: bytes) -> SigningKey:
        from cryptography.exceptions import UnsupportedAlgorithm
        try:
            return self._private(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm, SuiteError) as e:
            raise SuiteError(f"not a {self.name} private key: {e}") from e

    def public_key(self, pem: bytes) -> VerifyKey:
        from cryptography.exceptions import UnsupportedAlgorithm
        try:
            return self._public(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm, SuiteError) as e:
            raise SuiteError(f"not a {self.name} public key: {e}") from e

    def _hash(self):
        from cryptography.hazmat.primitives import hashes
        return getattr(hashes, self.hash_name)()

    def _cipher(self, key: bytes):
        from cryptography.hazmat.primitives.ciphers import algorithms
        return getattr(algorithms, self.cipher_name)(key)

    def digest(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        h = hashes.Hash(self._hash())
        h.update(data)
        return h.finalize()

    def mac(self, key: bytes, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hmac
        m = hmac.HMAC(key, self._hash())
        m.update(data)
        return m.finalize()

    def mac_ok(self, key: bytes, data: bytes, tag: bytes) -> bool:
        return std_hmac.compare_digest(self.mac(key, data), tag)

    def seal(self, key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
        """GCM ciphertext | 16-byte tag. `nonce` (12 bytes) must never repeat under one key."""
        from cryptography.hazmat.primitives.ciphers import Cipher, modes
        enc = Cipher(self._cipher(self._key(key)), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        return enc.update(data) + enc.finalize() + enc.tag

    def open(self, key: bytes, nonce: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
        if len(sealed) < 16:
            raise SuiteError("sealed data is shorter than its 16-byte tag")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher, modes
        dec = Cipher(self._cipher(self._key(key)), modes.GCM(nonce, sealed[-16:])).decryptor()
        dec.authenticate_additional_data(aad)
        try:
            return dec.update(sealed[:-16]) + dec.finalize()
        except InvalidTag:
            raise SuiteError(f"{self.name}: the data was changed, cut, or sealed under another key") from None

    def _key(self, key: bytes) -> bytes:
        if len(key) != self.key_bytes:
            raise SuiteError(f"a {self.name} encryption key is {self.key_bytes} bytes, not {len(key)}")
        return key


class _Ed25519Public:
    suite = "ed25519"

    def __init__(self, key):
        self.key = key

    def verify(self, signature: bytes, data: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        try:
            self.key.verify(signature, data)
            return True
        except InvalidSignature:
            return False

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class _Ed25519Private:
    suite = "ed25519"

    def __init__(self, key):
        self.key = key

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def public_key(self) -> _Ed25519Public:
        return _Ed25519Public(self.key.public_key())

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def ed25519_public(raw: bytes) -> _Ed25519Public:
    """An Ed25519 public key from its 32 raw bytes (how sync writes node and hub keys)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    return _Ed25519Public(Ed25519PublicKey.from_public_bytes(raw))


def _ed_generate() -> _Ed25519Private:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return _Ed25519Private(Ed25519PrivateKey.generate())


def _ed_private(pem: bytes) -> _Ed25519Private:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SuiteError("the PEM holds another kind of key")
    return _Ed25519Private(key)


def _ed_public(pem: bytes) -> _Ed25519Public:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise SuiteError("the PEM holds another kind of key")
    return _Ed25519Public(key)


def _sm_private(pem: bytes):
    from . import sm2
    try:
        return sm2.SM2PrivateKey.from_pem(pem)
    except sm2.SM2Error as e:
        raise SuiteError(str(e)) from e


def _sm_public(pem: bytes):
    from . import sm2
    try:
        return sm2.SM2PublicKey.from_pem(pem)
    except sm2.SM2Error as e:
        raise SuiteError(str(e)) from e


def _sm_generate():
    from . import sm2
    return sm2.SM2PrivateKey.generate()


ED25519 = Suite("ed25519", 32, _ed_generate, _ed_private, _ed_public, "SHA256", "AES")
SM = Suite("sm", 16, _sm_generate, _sm_private, _sm_public, "SM3", "SM4")
SUITES = {s.name: s for s in (ED25519, SM)}
DEFAULT = ED25519


def suite(name: str) -> Suite:
    """The suite called `name` (as recorded with a signed object or chosen at enrollment)."""
    try:
        return SUITES[name]
    except KeyError:
        raise SuiteError(f"crypto suite {name!r} is not known; use one of {', '.join(SUITES)}") from None


def read_pem(pem: bytes, *, private: bool) -> tuple[Suite, "SigningKey | VerifyKey"]:
    """A PEM key of whichever suite it belongs to: (suite, key); SuiteError naming each suite's
    complaint when it is none of them (a release key file says its suite by being read)."""
    problems = []
    for s in SUITES.values():
        try:
            return s, (s.private_key(pem) if private else s.public_key(pem))
        except SuiteError as e:
            problems.append(str(e))
    raise SuiteError("; ".join(problems))

