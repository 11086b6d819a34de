"""Update bundles through the hub's downlink: `hub bundle publish` -> a real `clinic-edge hub
serve` -> the enrolled node's `sync --once` fetches it (signed, resumable with HTTP Range) into
updates/ready -> `update apply-pending` (the root updater) applies it or files it under failed/."""
from __future__ import annotations

import base64
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import clinic_edge
from edge.appliance import bundle
from sync_fixtures import enroll, hub, sync_env  # noqa: F401


@pytest.fixture
def hub_database(tmp_path) -> str:   # SQLite only: the hub's storage is not what is tested here
    return f"sqlite:///{tmp_path / 'hub.db'}"


def make_bundle(tmp_path: Path, key, version: str, *, filler: int = 300_000) -> Path:
    """A signed bundle (edge.appliance.bundle.build, as in test_update_bundles.small_bundle) with a
    large random dependency so a download can be cut half way."""
    wheels = tmp_path / f"w-{version}"
    wheels.mkdir()
    (wheels / f"clinic_edge-{version}-py3-none-any.whl").write_bytes(b"PK not really a wheel")
    (wheels / "dep-1.0-py3-none-any.whl").write_bytes(os.urandom(filler))
    out = tmp_path / f"{version}.bundle"
    bundle.build(wheels, key, out)
    return out


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def usage(node, kind: str) -> int:
    return node.store.scalar("SELECT coalesce(sum(bytes), 0) FROM sync_usage WHERE kind = ?", (kind,))


def _signed_get(ident, hub_url: str, path: str, range_: str | None = None):
    import secrets

    from sync import protocol

    headers = protocol.sign_request(ident.key, "GET", path, ident.node, secrets.token_urlsafe(18),
                                    protocol.utc_now_iso(), b"")
    if range_:
        headers["Range"] = range_
    try:
        with urllib.request.urlopen(urllib.request.Request(hub_url + path, headers=headers)) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_hub_serves_a_published_bundle_in_ranges_to_signed_node_requests_only(env, node, hub, tmp_path):
    from sync.client import state

    enroll(env, hub)
    ident = state.identity(node)
    b = make_bundle(tmp_path, Ed25519PrivateKey.generate(), "0.8.0", filler=5000)
    data, digest = b.read_bytes(), sha(b)
    hub.cli("bundle", "publish", str(b))
    path = f"/v1/bundles/{digest}"
    assert _signed_get(ident, hub.url, path)[::2] == (200, data)
    status, headers, body = _signed_get(ident, hub.url, path, "bytes=100-")
    assert (status, body) == (206, data[100:]) and headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert _signed_get(ident, hub.url, path, f"bytes={len(data)}-")[0] == 416
    assert _signed_get(ident, hub.url, f"/v1/bundles/{'0' * 64}")[0] == 404
    r = hub.cli("bundle", "publish", str(tmp_path / "w-0.8.0" / "dep-1.0-py3-none-any.whl"), check=False)
    assert r.returncode == 2 and "not an update bundle" in r.stderr
