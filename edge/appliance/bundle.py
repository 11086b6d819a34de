"""Update bundles: the new version as wheels, a manifest of their SHA-256s, a signature.

A bundle is a plain tar file (wheels are already compressed) holding exactly:

    manifest.json   {"format": 1, "name": "clinic-edge", "version": "0.2.0", "created": ...,
                     "suite": "ed25519" or "sm",
                     "wheels": [{"file": "clinic_edge-0.2.0-py3-none-any.whl", "sha256": "..."}, ...]}
    manifest.sig    the signature of manifest.json's bytes in that crypto suite (docs/crypto-suites.md):
                    64-byte Ed25519 (RFC 8032), or DER SM2 with SM3 and the GM/T 0009 user id
    wheels/<file>   every wheel the manifest lists, nothing else

A manifest without "suite" (bundles made before suites) is ed25519. The wheel hashes stay SHA-256
in both suites: they are pip's own `--hash` form, and the signature over them is the suite's.

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

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.core.release import (FORMAT, PROJECT, Manifest, ReleaseKey, load_public_key,  # noqa: F401
                               public_key_text, sha256_bytes, verify, version_key)
from edge.core.suites import SuiteError, read_pem, suite as suite_named

from . import journal
from .errors import BundleRefused


# --- keys (release side and node side) -------------------------------------------------------------

@dataclass(frozen=True)
class ReleaseSigner:
    """The release private key, in its crypto suite."""
    suite: str
    key: Any               # a suite signing key: .sign(data) -> bytes

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def make_release_key(private_path: Path, public_path: Path, suite: str = "ed25519") -> str:
    """A new release key pair: PEM private key (0600) and the public key the nodes trust (the base64
    raw key for ed25519, as images have always carried; an SM2 PEM for sm)."""
    s = suite_named(suite)
    key = s.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.touch(mode=0o600, exist_ok=False)
    private_path.write_bytes(key.pem())
    if s.name == "ed25519":
        public = public_key_text(serialization.load_pem_public_key(key.public_key().pem()))
        public_path.write_text(public + "\n")
        return public
    public = key.public_key().pem().decode()
    public_path.write_text(public)
    return public


def load_private_key(path: Path) -> ReleaseSigner:
    """The release private key (PEM) in `path`, Ed25519 or SM2."""
    try:
        s, key = read_pem(path.read_bytes(), private=True)
    except SuiteError as e:
        raise BundleRefused(f"{path} is neither an Ed25519 nor an SM2 private key: {e}") from e
    return ReleaseSigner(s.name, key)


# --- building (release side) -----------------------------------------------------------------------

def build(wheel_dir: Path, key: "ReleaseSigner | Ed25519PrivateKey", out: Path, *,
          now: datetime | None = None, plugin: Path | None = None) -> Manifest:
    """Sign every wheel in `wheel_dir` into one bundle; the clinic-edge wheel names the version.
    `key` is a ReleaseSigner (load_private_key) or a bare Ed25519 key (the ed25519 suite). `plugin`:
    the broker's journal plugin built for the boxes, carried as a wheel (edge/appliance/journal.py);
    it must be the one this version's journal source names."""
    suite = key.suite if isinstance(key, ReleaseSigner) else "ed25519"
    wheels = {p.name: p.read_bytes() for p in sorted(wheel_dir.iterdir())
              if p.suffix == ".whl" and not p.name.startswith("clinic_edge_journal-")}
    own = [w for w in wheels if w.startswith("clinic_edge-")]
    if len(own) != 1:
        raise BundleRefused(f"{wheel_dir} must hold exactly one clinic_edge-*.whl (found {len(own)})")
    version = own[0].split("-")[1]
    if plugin is not None:
        name = journal.needed(wheel_dir)
        if name is not None and plugin.name != name:
            raise BundleRefused(f"{plugin.name} is not the journal plugin version {version} loads ({name}): "
                                "build it from this version's device_drivers/mqtt/clinic_journal.c")
        file, data = journal.wrap(plugin, version)
        wheels[file] = data
    body = {"format": FORMAT, "name": PROJECT, "version": version,
            "created": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"), "suite": suite,
            "wheels": [_pins(name, data, suite) for name, data in sorted(wheels.items())]}
    raw = json.dumps(body, indent=1, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        _add(tar, "manifest.json", raw)
        _add(tar, "manifest.sig", key.sign(raw))
        for name, data in sorted(wheels.items()):
            _add(tar, f"wheels/{name}", data)
    return Manifest(version, {w["file"]: w["sha256"] for w in body["wheels"]}, raw, suite,
                    {w["file"]: w["sm3"] for w in body["wheels"]} if suite == "sm" else None)


def _pins(name: str, data: bytes, suite: str) -> dict[str, str]:
    """A wheel's hashes in the manifest: SHA-256 (what pip checks), and SM3 too under an SM2 signature,
    so that no hash outside the county's suite stands between the signature and the code."""
    pins = {"file": name, "sha256": sha256_bytes(data)}
    if suite == "sm":
        from edge.core.suites import SM
        pins["sm3"] = SM.digest(data).hex()
    return pins


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
