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
flag makes a cut file fail instead of decrypting short. The hub's X25519 key is its Ed25519 key
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

MAGIC = b"CEX1"
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


def make_keypair(private_path: Path, public_path: Path) -> str:
    """A new X25519 key pair: base64 private key (0600, kept offline) and base64 public key."""
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    if not durable.create_file(private_path, base64.b64encode(raw).decode() + "\n"):
        raise SealError(f"{private_path} exists already: not overwritten")
    public = base64.b64encode(key.public_key().public_bytes(*RAW)).decode()
    durable.write_file(public_path, public + "\n", 0o644)
    return public


def load_public(path: Path) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(base64.b64decode(Path(path).read_text().strip(), validate=True))
    except (OSError, ValueError) as e:
        raise SealError(f"{path} is not a base64 X25519 public key: {e}") from e


def load_private(path: Path) -> X25519PrivateKey:
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


def seal_stream(recipient: X25519PublicKey, src: BinaryIO, dst: BinaryIO, purpose: str) -> None:
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(*RAW)
    aead = _key(eph.exchange(recipient), eph_pub, recipient.public_bytes(*RAW), purpose)
    aad = MAGIC + eph_pub + purpose.encode()
    dst.write(MAGIC + eph_pub)
    block, i = src.read(CHUNK), 0
    while True:
        nxt = src.read(CHUNK)
        ct = aead.encrypt(_nonce(i, not nxt), block, aad)
        dst.write(len(ct).to_bytes(4, "big") + ct)
        if not nxt:
            return
        block, i = nxt, i + 1


def unseal_stream(private: X25519PrivateKey, src: BinaryIO, dst: BinaryIO, purpose: str) -> None:
    head = src.read(len(MAGIC) + 32)
    if not head.startswith(MAGIC) or len(head) != len(MAGIC) + 32:
        raise SealError("not a sealed clinic-edge file")
    eph_pub = head[len(MAGIC):]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError as e:
        raise SealError(f"the sealed file's key is damaged: {e}") from e
    aead = _key(shared, eph_pub, private.public_key().public_bytes(*RAW), purpose)
    aad = MAGIC + eph_pub + purpose.encode()
    i = 0
    while True:
        size = src.read(4)
        if len(size) < 4:
            raise SealError("the sealed file is cut short (its last part is missing)")
        ct = src.read(int.from_bytes(size, "big"))
        for last in (False, True):
            try:
                dst.write(aead.decrypt(_nonce(i, last), ct, aad))
                break
            except InvalidTag:
                continue
        else:
            raise SealError("the sealed file was not made for this key, or it was changed")
        if last:
            if src.read(1):
                raise SealError("the sealed file has data after its end")
            return
        i += 1


def seal(recipient: X25519PublicKey, data: bytes, purpose: str) -> bytes:
    out = io.BytesIO()
    seal_stream(recipient, io.BytesIO(data), out, purpose)
    return out.getvalue()


def unseal(private: X25519PrivateKey, blob: bytes, purpose: str) -> bytes:
    out = io.BytesIO()
    unseal_stream(private, io.BytesIO(blob), out, purpose)
    return out.getvalue()


def is_sealed(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def seal_file(recipient: X25519PublicKey, src: Path, dst: Path, purpose: str) -> Path:
    """Seal `src` into `dst` (0600) in one rename: a reader sees no file or the whole one."""
    tmp = dst.with_name(dst.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(src, "rb") as s, os.fdopen(fd, "wb") as d:
        seal_stream(recipient, s, d, purpose)
        d.flush()
        os.fsync(d.fileno())
    os.replace(tmp, dst)
    return dst
