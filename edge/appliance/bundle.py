"""Update bundles: the new version as wheels, a manifest of their SHA-256s, an Ed25519 signature.

A bundle is a plain tar file (wheels are already compressed) holding exactly:

    manifest.json   {"format": 1, "name": "clinic-edge", "version": "0.2.0", "created": ...,
                     "wheels": [{"file": "clinic_edge-0.2.0-py3-none-any.whl", "sha256": "..."}, ...]}
    manifest.sig    64-byte Ed25519 signature (RFC 8032) of manifest.json's bytes
    wheels/<file>   every wheel the manifest lists, nothing else

The release key signs the manifest; the manifest pins every wheel by hash, so one signature covers
the whole bundle. `verify()` refuses an unsigned, tampered, mis-signed or malformed bundle with a
message saying which, before anything on the node is touched.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import BundleRefused

FORMAT = 1
PROJECT = "clinic-edge"
MAX_MEMBERS = 500
WHEEL = re.compile(r"[A-Za-z0-9_.+-]+\.whl")


@dataclass(frozen=True)
class Manifest:
    version: str
    wheels: dict[str, str]  # file -> sha256
    raw: bytes


# --- keys (release side and node side) -------------------------------------------------------------

def make_release_key(private_path: Path, public_path: Path) -> str:
    """A new release key pair: PEM private key (0600) and the base64 public key the nodes trust."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.touch(mode=0o600, exist_ok=False)
    private_path.write_bytes(pem)
    public = public_key_text(key.public_key())
    public_path.write_text(public + "\n")
    return public


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleRefused(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except FileNotFoundError:
        raise BundleRefused(f"no release key at {path}: put the county's release.pub there "
                            f"(or set [update] release_key)") from None
    except ValueError as e:
        raise BundleRefused(f"the release key {path} is not a base64 Ed25519 public key: {e}") from e


# --- building (release side) -----------------------------------------------------------------------

def build(wheel_dir: Path, key: Ed25519PrivateKey, out: Path, *, now: datetime | None = None) -> Manifest:
    """Sign every wheel in `wheel_dir` into one bundle; the clinic-edge wheel names the version."""
    wheels = sorted(p for p in wheel_dir.iterdir() if p.suffix == ".whl")
    own = [w for w in wheels if w.name.startswith("clinic_edge-")]
    if len(own) != 1:
        raise BundleRefused(f"{wheel_dir} must hold exactly one clinic_edge-*.whl (found {len(own)})")
    version = own[0].name.split("-")[1]
    body = {"format": FORMAT, "name": PROJECT, "version": version,
            "created": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
            "wheels": [{"file": w.name, "sha256": _sha256(w.read_bytes())} for w in wheels]}
    raw = json.dumps(body, indent=1, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        _add(tar, "manifest.json", raw)
        _add(tar, "manifest.sig", key.sign(raw))
        for w in wheels:
            tar.add(w, arcname=f"wheels/{w.name}", recursive=False)
    return Manifest(version, {w["file"]: w["sha256"] for w in body["wheels"]}, raw)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- verifying and unpacking (node side) -----------------------------------------------------------

def verify(path: Path, public: Ed25519PublicKey, dest: Path | None = None) -> Manifest:
    """Check the signature, the manifest and every wheel's hash; optionally unpack the wheels to
    `dest`. Raises BundleRefused saying what is wrong; writes nothing outside `dest`."""
    try:
        tar = tarfile.open(path, "r:")
    except (OSError, tarfile.TarError) as e:
        raise BundleRefused(f"{path} is not an update bundle: {e}") from e
    with tar:
        members = tar.getmembers()
        if len(members) > MAX_MEMBERS:
            raise BundleRefused(f"{path} has too many files ({len(members)})")
        files = {m.name: m for m in members}
        if "manifest.json" not in files:
            raise BundleRefused(f"{path} has no manifest.json: not an update bundle")
        if "manifest.sig" not in files:
            raise BundleRefused(f"{path} is not signed (no manifest.sig): refused")
        raw = _read(tar, files["manifest.json"])
        try:
            public.verify(_read(tar, files["manifest.sig"]), raw)
        except InvalidSignature:
            raise BundleRefused(f"{path}: the signature does not match the release key: the bundle was "
                                f"changed or signed with another key; refused") from None
        manifest = _parse(raw, path)
        expected = {f"wheels/{f}" for f in manifest.wheels} | {"manifest.json", "manifest.sig"}
        extra = set(files) - expected
        missing = expected - set(files)
        if extra or missing:
            raise BundleRefused(f"{path}: files do not match the signed manifest "
                                f"(extra: {sorted(extra) or '-'}, missing: {sorted(missing) or '-'})")
        if dest is not None:
            dest.mkdir(parents=True, exist_ok=True)
        for name, digest in manifest.wheels.items():
            member = files[f"wheels/{name}"]
            if not member.isfile():
                raise BundleRefused(f"{path}: wheels/{name} is not a regular file")
            data = _read(tar, member)
            if _sha256(data) != digest:
                raise BundleRefused(f"{path}: wheels/{name} was changed after signing (hash mismatch); refused")
            if dest is not None:
                (dest / name).write_bytes(data)
    return manifest


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise BundleRefused(f"{member.name} in the bundle is not a file")
    return f.read()


def _parse(raw: bytes, path: Path) -> Manifest:
    try:
        body = json.loads(raw)
        if body.get("format") != FORMAT or body.get("name") != PROJECT:
            raise ValueError(f"format {body.get('format')!r} / name {body.get('name')!r}")
        wheels = {w["file"]: w["sha256"] for w in body["wheels"]}
        version = str(body["version"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BundleRefused(f"{path}: the manifest is not understood ({e})") from e
    if not all(WHEEL.fullmatch(f) for f in wheels) or not re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version):
        raise BundleRefused(f"{path}: the manifest names unsafe files or an unsafe version")
    return Manifest(version, wheels, raw)


def version_key(version: str) -> tuple:
    """Order release versions: 0.10.0 > 0.9.1 > 0.9.1rc1 (numbers compared as numbers)."""
    parts = []
    for piece in re.split(r"[.+-]", version):
        m = re.fullmatch(r"(\d+)(.*)", piece)
        parts.append((int(m.group(1)), 0 if not m.group(2) else -1, m.group(2)) if m else (-1, -1, piece))
    return tuple(parts)
