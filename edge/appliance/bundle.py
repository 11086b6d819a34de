"""Update bundles: the new version as wheels, a manifest of their SHA-256s, an Ed25519 signature.

A bundle is a plain tar file (wheels are already compressed) holding exactly:

    manifest.json   {"format": 1, "name": "clinic-edge", "version": "0.2.0", "created": ...,
                     "wheels": [{"file": "clinic_edge-0.2.0-py3-none-any.whl", "sha256": "..."}, ...]}
    manifest.sig    64-byte Ed25519 signature (RFC 8032) of manifest.json's bytes
    wheels/<file>   every wheel the manifest lists, nothing else

The release key signs the manifest; the manifest pins every wheel by hash, so one signature covers
the whole bundle. `verify()` refuses an unsigned, tampered, mis-signed or malformed bundle with a
message saying which, before anything on the node is touched. The checking half lives in
edge/core/release.py, so that the sync client can check a download before it enters updates/ready/.
"""
from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.core.release import (FORMAT, PROJECT, Manifest, load_public_key, public_key_text,  # noqa: F401
                               sha256_bytes, verify, version_key)

from .errors import BundleRefused


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


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleRefused(f"{path} is not an Ed25519 private key")
    return key


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
            "wheels": [{"file": w.name, "sha256": sha256_bytes(w.read_bytes())} for w in wheels]}
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
