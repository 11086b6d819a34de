"""Sealed files: data encrypted to one recipient's X25519 public key (docs/security.md).

Used for USB export bundles (to the hub's key) and nightly backups (to the county backup key).
Format, streamed in 1 MiB chunks so a large backup never sits in memory whole:

    b"CEX1" | ephemeral X25519 public key (32) | chunk* 
    chunk = length (4 bytes, big-endian) | AES-256-GCM ciphertext + tag of up to 1 MiB
    key   = HKDF-SHA256(X25519(ephemeral, recipient), salt = ephemeral pub | recipient pub,
                        info = "clinic-edge sealed v1 " + purpose)
    nonce = chunk number (11 bytes, big-endian) | 0x01 on the last chunk, else 0x00
    AAD   = b"CEX1" | ephemeral pub | purpose

A fresh ephemeral key per file makes the key unique, so counter nonces never repeat; the last-chunk
flag makes a cut file fail instead of decrypting short.

The `sm` crypto suite (docs/crypto-suites.md) seals to an SM2 public key (PEM) instead:

    b"CES1" | length (2 bytes) | SM2 encryption of a random 16-byte SM4 key (GM/T 0009 DER) | chunk*
    chunk as above, SM4-GCM under that key; AAD = b"CES1" | the encrypted key | purpose

The magic says which suite made a file, so a county that moves to `sm` still restores old backups. The hub's X25519 key is its Ed25519 key
converted (RFC 7748 section 4.1 birational map; the private scalar is the one Ed25519 derives
from its seed), so a node seals to the hub key it already pinned at enrollment.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import durable
from .errors import CoreError
from .suites import SM, SuiteError

MAGIC = b"CEX1"
MAGIC_SM = b"CES1"
CHUNK = 1 << 20
_P = 2 ** 255 - 19
RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SealError(CoreError):
    """A sealed file that cannot be opened: wrong key, changed, cut short, or not sealed."""


# --- keys ------------------------------------------------------------------------------------------

def x25519_private_from_ed25519(key: Ed25519PrivateKey) -> X25519PrivateKey:
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    return X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])   # clamped by X25519


def x25519_public_from_ed25519(pub: Ed25519PublicKey) -> X25519PublicKey:
    y = int.from_bytes(pub.public_bytes(*RAW), "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return X25519PublicKey.from_public_bytes(u.to_bytes(32, "little"))


def make_keypair(private_path: Path, public_path: Path, suite: str = "ed25519") -> str:
    """A new key pair: private key (0600, kept offline) and public key. The default suite's is X25519
    (base64 files); the `sm` suite's is SM2 (PEM files)."""
    if suite == "sm":
        return _make_sm2_keypair(private_path, public_path)
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    if not durable.create_file(private_path, base64.b64encode(raw).decode() + "\n"):
        raise SealError(f"{private_path} exists already: not overwritten")
    public = base64.b64encode(key.public_key().public_bytes(*RAW)).decode()
    durable.write_file(public_path, public + "\n", 0o644)
    return public


def _make_sm2_keypair(private_path: Path, public_path: Path) -> str:
    from .suites import sm2

    key = sm2.SM2PrivateKey.generate()
    if not durable.create_file(private_path, key.pem().decode()):
        raise SealError(f"{private_path} exists already: not overwritten")
    public = key.public_key().pem().decode()
    durable.write_file(public_path, public, 0o644)
    return "SM2 " + key.point().hex()


def _pem(path: Path, private: bool):
    from .suites import sm2

    try:
        pem = Path(path).read_bytes()
        return sm2.SM2PrivateKey.from_pem(pem) if private else sm2.SM2PublicKey.from_pem(pem)
    except (OSError, sm2.SM2Error) as e:
        raise SealError(f"{path} is not an SM2 {'private' if private else 'public'} key (PEM): {e}") from e


def _is_pem(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(11) == b"-----BEGIN "
    except OSError:
        return False


def load_public(path: Path):
    """The recipient key in `path`: base64 X25519 (default suite) or an SM2 PEM (sm suite)."""
    if _is_pem(path):
        return _pem(path, private=False)
    try:
        return X25519PublicKey.from_public_bytes(base64.b64decode(Path(path).read_text().strip(), validate=True))
    except (OSError, ValueError) as e:
        raise SealError(f"{path} is not a base64 X25519 public key: {e}") from e


def load_private(path: Path):
    if _is_pem(path):
        return _pem(path, private=True)
    try:
        return X25519PrivateKey.from_private_bytes(base64.b64decode(Path(path).read_text().strip(), validate=True))
    except (OSError, ValueError) as e:
        raise SealError(f"{path} is not a base64 X25519 private key (backup.key): {e}") from e


# --- sealing ---------------------------------------------------------------------------------------

def _key(shared: bytes, eph: bytes, recipient: bytes, purpose: str) -> AESGCM:
    hkdf = HKDF(hashes.SHA256(), 32, salt=eph + recipient, info=b"clinic-edge sealed v1 " + purpose.encode())
    return AESGCM(hkdf.derive(shared))


def _nonce(i: int, last: bool) -> bytes:
    return i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _chunks_out(encrypt, src: BinaryIO, dst: BinaryIO) -> None:
    block, i = src.read(CHUNK), 0
    while True:
        nxt = src.read(CHUNK)
        ct = encrypt(_nonce(i, not nxt), block)
        dst.write(len(ct).to_bytes(4, "big") + ct)
        if not nxt:
            return
        block, i = nxt, i + 1


def _chunks_in(decrypt, src: BinaryIO, dst: BinaryIO) -> None:
    i = 0
    while True:
        size = src.read(4)
        if len(size) < 4:
            raise SealError("the sealed file is cut short (its last part is missing)")
        ct = src.read(int.from_bytes(size, "big"))
        for last in (False, True):
            try:
                dst.write(decrypt(_nonce(i, last), ct))
                break
            except (InvalidTag, SuiteError):
                continue
        else:
            raise SealError("the sealed file was not made for this key, or it was changed")
        if last:
            if src.read(1):
                raise SealError("the sealed file has data after its end")
            return
        i += 1


def seal_stream(recipient, src: BinaryIO, dst: BinaryIO, purpose: str) -> None:
    """Seal `src` to `recipient` (an X25519 or an SM2 public key, from load_public)."""
    if not isinstance(recipient, X25519PublicKey):
        return _seal_sm(recipient, src, dst, purpose)
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(*RAW)
    aead = _key(eph.exchange(recipient), eph_pub, recipient.public_bytes(*RAW), purpose)
    aad = MAGIC + eph_pub + purpose.encode()
    dst.write(MAGIC + eph_pub)
    _chunks_out(lambda nonce, block: aead.encrypt(nonce, block, aad), src, dst)


def _seal_sm(recipient, src: BinaryIO, dst: BinaryIO, purpose: str) -> None:
    key = os.urandom(SM.key_bytes)
    wrapped = recipient.encrypt(key)
    aad = MAGIC_SM + wrapped + purpose.encode()
    dst.write(MAGIC_SM + len(wrapped).to_bytes(2, "big") + wrapped)
    _chunks_out(lambda nonce, block: SM.seal(key, nonce, block, aad), src, dst)


def unseal_stream(private, src: BinaryIO, dst: BinaryIO, purpose: str) -> None:
    magic = src.read(len(MAGIC))
    if magic == MAGIC_SM:
        return _unseal_sm(private, src, dst, purpose)
    head = magic + src.read(32)
    if not head.startswith(MAGIC) or len(head) != len(MAGIC) + 32:
        raise SealError("not a sealed clinic-edge file")
    if not isinstance(private, X25519PrivateKey):
        raise SealError("the file was sealed to an X25519 key (the default suite) and this key is SM2")
    eph_pub = head[len(MAGIC):]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError as e:
        raise SealError(f"the sealed file's key is damaged: {e}") from e
    aead = _key(shared, eph_pub, private.public_key().public_bytes(*RAW), purpose)
    aad = MAGIC + eph_pub + purpose.encode()
    _chunks_in(lambda nonce, ct: aead.decrypt(nonce, ct, aad), src, dst)


def _unseal_sm(private, src: BinaryIO, dst: BinaryIO, purpose: str) -> None:
    from .suites import sm2

    if isinstance(private, X25519PrivateKey):
        raise SealError("the file was sealed to an SM2 key (the sm suite) and this key is X25519")
    size = int.from_bytes(src.read(2), "big")
    wrapped = src.read(size)
    try:
        key = private.decrypt(wrapped)
    except sm2.SM2Error:
        raise SealError("the sealed file was not made for this key, or its key part was changed") from None
    aad = MAGIC_SM + wrapped + purpose.encode()
    _chunks_in(lambda nonce, ct: SM.open(key, nonce, ct, aad), src, dst)


def seal(recipient, data: bytes, purpose: str) -> bytes:
    out = io.BytesIO()
    seal_stream(recipient, io.BytesIO(data), out, purpose)
    return out.getvalue()


def unseal(private, blob: bytes, purpose: str) -> bytes:
    out = io.BytesIO()
    unseal_stream(private, io.BytesIO(blob), out, purpose)
    return out.getvalue()


def is_sealed(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) in (MAGIC, MAGIC_SM)


def seal_file(recipient, src: Path, dst: Path, purpose: str) -> Path:
    """Seal `src` into `dst` (0600) in one rename: a reader sees no file or the whole one."""
    tmp = dst.with_name(dst.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(src, "rb") as s, os.fdopen(fd, "wb") as d:
        seal_stream(recipient, s, d, purpose)
        d.flush()
        os.fsync(d.fileno())
    os.replace(tmp, dst)
    return dst
