"""Release bundles, the node side: the release public key and the bundle's signature check.

Pure checking, no installing: the root updater (edge/appliance/update.py) and the unprivileged sync
client (sync/client/bundles.py, before a download may enter updates/ready/) both use it. The bundle
format is described in edge/appliance/bundle.py and docs/security.md.

The signature is made in a crypto suite (docs/crypto-suites.md): Ed25519 (the default; the release
key is the base64 raw key the images have always carried) or SM2 with SM3 (a county on the `sm`
suite; the release key is an SM2 PEM). The signed manifest names its suite (`"suite"`; a manifest
without one is an ed25519 bundle from before), and a bundle whose suite is not the release key's is
refused saying so, before its signature is checked.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BundleRefused

FORMAT = 1
PROJECT = "clinic-edge"
MAX_MEMBERS = 500
WHEEL = re.compile(r"[A-Za-z0-9_.+-]+\.whl")
VERSION = re.compile(r"[0-9][0-9A-Za-z.+-]*")

# cryptography is imported by the functions that check a key or a signature, not with this module:
# the web UI and the health pages only ask running_version(), and cryptography's bindings cost a
# process about 8 MB (docs/operations.md, memory).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def running_version() -> str:
    """The version of clinic-edge this process runs (its package metadata), or "unknown"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROJECT)
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Manifest:
    version: str
    wheels: dict[str, str]  # file -> sha256
    raw: bytes
    suite: str = "ed25519"
    sm3: dict[str, str] | None = None   # file -> SM3, every wheel of an sm bundle (docs/crypto-suites.md)


@dataclass(frozen=True)
class ReleaseKey:
    """The release public key a node trusts, in its crypto suite (edge.core.suites)."""
    suite: str
    key: Any               # a suite verify key: .verify(signature, data) -> bool

    def verify(self, signature: bytes, data: bytes) -> bool:
        return self.key.verify(signature, data)


def _release_key(public) -> ReleaseKey:
    """`public` as a ReleaseKey; a bare `cryptography` Ed25519 public key is an ed25519 one."""
    if isinstance(public, ReleaseKey):
        return public
    from cryptography.hazmat.primitives import serialization

    from .suites import ED25519
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ReleaseKey(ED25519.name, ED25519.public_key(pem))


def public_key_text(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def load_public_key(path: Path) -> ReleaseKey:
    """The release key in `path`: base64 Ed25519 (ed25519 suite) or an SM2 public key PEM (sm)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BundleRefused(f"no release key at {path}: the image puts the county's release.pub there "
                            f"(image/build --release-key)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BundleRefused(f"the release key {path} cannot be read: {e}") from e
    if text.startswith("-----BEGIN "):
        return _pem_release_key(path, text.encode())
    try:
        return _release_key(Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True)))
    except ValueError as e:
        raise BundleRefused(f"the release key {path} is not a base64 Ed25519 public key: {e}") from e


def _pem_release_key(path: Path, pem: bytes) -> ReleaseKey:
    from .suites import SuiteError, read_pem

    try:
        s, key = read_pem(pem, private=False)
    except SuiteError as e:
        raise BundleRefused(f"the release key {path} is neither an Ed25519 nor an SM2 public key: {e}") from e
    return ReleaseKey(s.name, key)


def journal_plugin_name(source: bytes) -> str:
    """The broker's journal plugin is named after its source's SHA-256, so a changed source is a
    new file (device_drivers/mqtt/journal_plugin.py builds it, edge/appliance/journal.py carries it)."""
    return f"clinic_journal-{hashlib.sha256(source).hexdigest()[:16]}.so"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(path: Path, public: "ReleaseKey | Ed25519PublicKey", dest: Path | None = None) -> Manifest:
    """Check the suite, the signature, the manifest and every wheel's hash; optionally unpack the
    wheels to `dest`. Raises BundleRefused saying what is wrong; writes nothing outside `dest`."""
    public = _release_key(public)
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
        claimed = _claimed_suite(raw)
        if claimed != public.suite:
            raise BundleRefused(f"{path}: the manifest says it is signed in the {claimed} suite, but this node's "
                                f"release key is {public.suite}: refused (a county moving suites puts a release "
                                "key of the new suite on its nodes first, docs/crypto-suites.md)")
        if not public.verify(_read(tar, files["manifest.sig"]), raw):
            raise BundleRefused(f"{path}: the signature does not match the release key ({public.suite}): the bundle "
                                f"was changed or signed with another key; refused")
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
            if sha256_bytes(data) != digest or (manifest.sm3 is not None and _sm3(data) != manifest.sm3[name]):
                raise BundleRefused(f"{path}: wheels/{name} was changed after signing (hash mismatch); refused")
            if dest is not None:
                (dest / name).write_bytes(data)
    return manifest


def _claimed_suite(raw: bytes) -> str:
    """The suite a manifest names (unsigned until checked: only used to pick the check)."""
    try:
        body = json.loads(raw)
        claimed = body.get("suite", "ed25519") if isinstance(body, dict) else "ed25519"
    except ValueError:
        return "ed25519"      # not JSON: the signature check refuses it
    return claimed if isinstance(claimed, str) else repr(claimed)


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
        suite = str(body.get("suite", "ed25519"))
        sm3 = {w["file"]: str(w["sm3"]) for w in body["wheels"]} if suite == "sm" else None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BundleRefused(f"{path}: the manifest is not understood ({e}; an sm bundle pins every wheel by "
                            "sha256 and sm3)") from e
    if not all(WHEEL.fullmatch(f) for f in wheels) or not VERSION.fullmatch(version):
        raise BundleRefused(f"{path}: the manifest names unsafe files or an unsafe version")
    return Manifest(version, wheels, raw, suite, sm3)


def _sm3(data: bytes) -> str:
    from .suites import SM
    return SM.digest(data).hex()


def version_key(version: str) -> tuple:
    """Order release versions: 0.10.0 > 0.9.1 > 0.9.1rc1 (numbers compared as numbers)."""
    parts = []
    for piece in re.split(r"[.+-]", version):
        m = re.fullmatch(r"(\d+)(.*)", piece)
        parts.append((int(m.group(1)), 0 if not m.group(2) else -1, m.group(2)) if m else (-1, -1, piece))
    return tuple(parts)
