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


@pytest.fixture
def release(tmp_path, env):
    """The release key the node trusts (on the appliance: /etc/clinic-edge/release.pub on the
    read-only root) and the node's environment pointing at it, as the units' Environment= would."""
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "root" / "release.pub"
    pub.parent.mkdir()
    pub.write_text(bundle.public_key_text(key.public_key()) + "\n")
    return key, pub, {**sync_env(env), "CLINIC_EDGE_UPDATE_RELEASE_KEY": str(pub)}


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def usage(node, kind: str) -> int:
    return node.store.scalar("SELECT coalesce(sum(bytes), 0) FROM sync_usage WHERE kind = ?", (kind,))


def _signed_get(ident, hub, path: str, range_: str | None = None):
    import secrets

    from sync import protocol

    headers = protocol.sign_request(ident.key, "GET", path, ident.node, secrets.token_urlsafe(18),
                                    protocol.utc_now_iso(), b"")
    if range_:
        headers["Range"] = range_
    try:
        with hub.urlopen(urllib.request.Request(hub.url + path, headers=headers)) as r:
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
    assert _signed_get(ident, hub, path)[::2] == (200, data)
    status, headers, body = _signed_get(ident, hub, path, "bytes=100-")
    assert (status, body) == (206, data[100:]) and headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert _signed_get(ident, hub, path, f"bytes={len(data)}-")[0] == 416
    assert _signed_get(ident, hub, f"/v1/bundles/{'0' * 64}")[0] == 404
    r = hub.cli("bundle", "publish", str(tmp_path / "w-0.8.0" / "dep-1.0-py3-none-any.whl"), check=False)
    assert r.returncode == 2 and "not an update bundle" in r.stderr


def test_a_published_bundle_reaches_updates_ready_and_only_enrolled_nodes_may_fetch_it(env, node, hub, tmp_path,
                                                                                       release):
    key, _, node_env = release
    enroll(env, hub)
    b = make_bundle(tmp_path, key, "0.9.0")
    out = hub.cli("bundle", "publish", str(b)).stdout
    assert "0.9.0" in out and sha(b) in out
    assert (hub.data / "hub" / "bundles" / f"{sha(b)}.bundle").read_bytes() == b.read_bytes()
    with pytest.raises(urllib.error.HTTPError) as e:     # unsigned request: refused
        hub.urlopen(f"{hub.url}/v1/bundles/{sha(b)}")
    assert e.value.code == 401
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    ready = node.data_dir / "updates" / "ready" / "0.9.0.bundle"
    assert sha(ready) == sha(b)
    assert not list((node.data_dir / "updates").glob("*.partial"))
    before = usage(node, "_update")
    assert before >= b.stat().st_size          # the download counts against the SIM budget
    # already here: the next sync does not fetch it again
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    assert usage(node, "_update") == before


def test_a_cut_download_resumes_and_a_corrupted_partial_is_discarded_then_fetched_again(env, node, hub, tmp_path,
                                                                                        release):
    key, _, node_env = release
    enroll(env, hub)
    b = make_bundle(tmp_path, key, "0.9.1")
    data = b.read_bytes()
    hub.cli("bundle", "publish", str(b), "--node", "clinic-a")
    updates = node.data_dir / "updates"
    updates.mkdir()
    half = len(data) // 2
    partial = updates / "0.9.1.bundle.partial"
    partial.write_bytes(data[:half])              # an earlier download the link cut half way
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    ready = updates / "ready" / "0.9.1.bundle"
    assert ready.read_bytes() == data and not partial.exists()
    assert usage(node, "_update") < len(data) - half + 1000   # only the rest came (Range)

    ready.unlink()                                 # now a partial whose bytes are wrong
    partial.write_bytes(b"\0" * half)
    r = clinic_edge(node_env, "sync", "--once", check=False)
    assert not ready.exists() and not partial.exists()
    assert "sha256" in r.stderr
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    assert ready.read_bytes() == data


def test_apply_pending_files_a_refused_older_bundle_under_failed_and_changes_nothing(env, tmp_path):
    key = Ed25519PrivateKey.generate()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "release.pub").write_text(base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode())
    prefix = tmp_path / "opt"
    (prefix / "1.0.0").mkdir(parents=True)
    os.symlink("1.0.0", prefix / "current")
    data = Path(env["CLINIC_EDGE_DATA"])
    ready = data / "updates" / "ready"
    ready.mkdir(parents=True)
    make_bundle(tmp_path, key, "0.5.0", filler=100).rename(ready / "0.5.0.bundle")
    e = {**env, "CLINIC_EDGE_UPDATE_PREFIX": str(prefix), "CLINIC_EDGE_UPDATE_RELEASE_KEY": str(keys / "release.pub")}
    listing = sorted(p.name for p in prefix.iterdir())
    r = clinic_edge(e, "update", "apply-pending", check=False)
    assert r.returncode == 3, r.stderr
    assert "not newer" in r.stderr
    assert (data / "updates" / "failed" / "0.5.0.bundle").exists() and not list(ready.iterdir())
    assert sorted(p.name for p in prefix.iterdir()) == listing and os.readlink(prefix / "current") == "1.0.0"
    # nothing pending: exit 0, says so
    r = clinic_edge(e, "update", "apply-pending", check=False)
    assert r.returncode == 0 and "no bundle" in (r.stdout + r.stderr)


def test_a_download_the_link_cuts_mid_response_resumes_from_the_partial(env, node, hub, tmp_path, release):
    """Through the sync tests' fault proxy: the response is cut after a third of its bytes."""
    from sync.client import bundles, state, transport
    from sync.client.errors import LinkError
    from sync_fixtures import FaultProxy

    enroll(env, hub)
    key, pub, _ = release
    b = make_bundle(tmp_path, key, "0.9.2", filler=600_000)
    data = b.read_bytes()
    hub.cli("bundle", "publish", str(b))
    item = {"version": "0.9.2", "sha256": sha(b), "size": len(data)}
    proxy = FaultProxy(hub.port, hub_data=hub.data, mode="drop_during_response").start()
    try:
        ident = state.identity(node)
        client = transport.HubClient(proxy.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=5,
                                    context=transport.tls.client_context(node.data_dir))
        with pytest.raises(LinkError, match="to resume"):
            bundles.fetch(client, item, node.data_dir, pub)
        partial = node.data_dir / "updates" / "0.9.2.bundle.partial"
        cut = partial.stat().st_size
        assert 0 < cut < len(data) and partial.read_bytes() == data[:cut]
        proxy.mode = "pass"
        ready, got = bundles.fetch(client, item, node.data_dir, pub)
        assert ready.read_bytes() == data and got == len(data) - cut     # only the rest crossed the link
    finally:
        proxy.stop()


def test_a_bundle_signed_with_another_key_never_reaches_ready_and_is_not_fetched_again(env, node, hub, tmp_path,
                                                                                      release):
    """A hub that publishes a bundle it signed itself (issue 13): the sync client checks the
    signature against the release key on the read-only root before anything enters ready/."""
    _, _, node_env = release
    enroll(env, hub)
    b = make_bundle(tmp_path, Ed25519PrivateKey.generate(), "9.9.9", filler=5000)
    hub.cli("bundle", "publish", str(b))
    r = clinic_edge(node_env, "sync", "--once", check=False)
    updates = node.data_dir / "updates"
    assert not (updates / "ready" / "9.9.9.bundle").exists()
    assert "refused" in r.stderr and "another key" in r.stderr
    assert (updates / "failed" / "9.9.9.bundle").exists() and not list(updates.glob("*.partial"))
    before = usage(node, "_update")
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    assert usage(node, "_update") == before and not (updates / "ready").exists()


def test_without_the_release_key_a_download_waits_as_partial_and_is_not_fetched_twice(env, node, hub, tmp_path,
                                                                                     release):
    key, pub, node_env = release
    enroll(env, hub)
    b = make_bundle(tmp_path, key, "0.9.3", filler=5000)
    hub.cli("bundle", "publish", str(b))
    gone = {**node_env, "CLINIC_EDGE_UPDATE_RELEASE_KEY": str(tmp_path / "missing.pub")}
    r = clinic_edge(gone, "sync", "--once", check=False)
    updates = node.data_dir / "updates"
    assert "no release key" in r.stderr and not (updates / "ready").exists()
    assert (updates / "0.9.3.bundle.partial").read_bytes() == b.read_bytes()
    before = usage(node, "_update")
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    assert (updates / "ready" / "0.9.3.bundle").read_bytes() == b.read_bytes()
    assert usage(node, "_update") == before          # checked again, not downloaded again


# ---- the daily byte budget and withdrawn bundles (issue 18) ----------------------------------------

def _status(env) -> dict:
    import json

    return json.loads(clinic_edge(env, "sync", "status", "--json").stdout)


def _spend(node, nbytes: int) -> None:
    """Bytes the records already used today, metered as the uplink meters them."""
    from sync.client import state

    state.meter(node.store, node.today().isoformat(), {"reading": 1}, nbytes)


def _a_day_passes(node) -> None:
    """Today's metered bytes become yesterday's (the budget is per clinic day)."""
    with node.store.atomic() as conn:
        conn.execute("UPDATE sync_usage SET day = date(day, '-1 day')")


def test_a_bundle_larger_than_the_rest_of_todays_budget_waits_for_the_next_day(env, node, hub, tmp_path,
                                                                            release):
    key, _, node_env = release
    enroll(env, hub)
    b = make_bundle(tmp_path, key, "0.9.3")
    size = b.stat().st_size
    hub.cli("bundle", "publish", str(b))
    e = sync_env(node_env, daily_budget_bytes=size + 200_000)
    _spend(node, 250_000)                                  # the records took most of today's budget
    assert clinic_edge(e, "sync", "--once", check=False).returncode == 0   # the records are all sent
    updates = node.data_dir / "updates"
    assert not (updates / "ready" / "0.9.3.bundle").exists() and not list(updates.glob("*.partial"))
    status = _status(e)
    assert "0.9.3" in status["update_waiting"] and "waits" in status["update_waiting"]
    assert "_update" not in status["usage_today"]          # not one byte of it crossed the SIM card

    _a_day_passes(node)
    assert clinic_edge(e, "sync", "--once", check=False).returncode == 0
    assert sha(updates / "ready" / "0.9.3.bundle") == sha(b)
    status = _status(e)
    assert status["usage_today"]["_update"]["bytes"] >= size          # counted in sync status
    assert status["bytes_today"] >= size and status["update_waiting"] is None


def test_the_county_gives_updates_their_own_budget_and_the_records_keep_theirs(env, node, hub, tmp_path,
                                                                             release):
    from sync_fixtures import add_records

    key, _, node_env = release
    enroll(env, hub)
    b = make_bundle(tmp_path, key, "0.9.4")
    size = b.stat().st_size
    hub.cli("bundle", "publish", str(b))
    e = sync_env(node_env, daily_budget_bytes=size // 3)
    assert clinic_edge(e, "sync", "--once", check=False).returncode == 0
    assert "larger than a whole day's budget" in _status(e)["update_waiting"]
    hub.cli("push", "clinic-a", "config", "sync", "--payload", f'{{"update_budget_bytes": {size * 2}}}')
    clinic_edge(e, "sync", "--once", check=False)          # takes the setting (used from the next start)
    assert clinic_edge(e, "sync", "--once", check=False).returncode == 0
    assert sha(node.data_dir / "updates" / "ready" / "0.9.4.bundle") == sha(b)
    status = _status(e)
    assert status["update_budget_bytes"] == size * 2 and status["usage_today"]["_update"]["bytes"] >= size
    add_records(node, 4)                                   # the records' own budget is not spent by the update
    assert clinic_edge(e, "sync", "--once", check=False).returncode == 0
    assert len(hub.held()) == 4


def test_a_withdrawn_bundle_is_not_fetched_and_an_unapplied_one_is_dropped(env, node, hub, tmp_path, release):
    key, _, node_env = release
    enroll(env, hub)
    fetched, later = make_bundle(tmp_path, key, "0.9.7", filler=5000), make_bundle(tmp_path, key, "0.9.8", filler=5000)
    hub.cli("bundle", "publish", str(fetched))
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    ready = node.data_dir / "updates" / "ready"
    assert (ready / "0.9.7.bundle").exists()
    hub.cli("bundle", "publish", str(later), "--node", "clinic-a")
    out = hub.cli("bundle", "withdraw", "0.9.7").stdout              # by version
    assert "withdrew update bundle 0.9.7" in out
    assert "0.9.8" in hub.cli("bundle", "withdraw", sha(later)).stdout   # by sha256
    r = hub.cli("bundle", "withdraw", "0.9.7", check=False)
    assert r.returncode == 2 and "no published" in r.stderr
    before = usage(node, "_update")
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    assert not list(ready.iterdir()), "a withdrawn bundle waiting in ready/ must not be applied"
    assert not list((node.data_dir / "updates").glob("*.partial")) and usage(node, "_update") == before
    from sync.client import state

    status, _, _ = _signed_get(state.identity(node), hub, f"/v1/bundles/{sha(later)}")
    assert status == 404                                   # the hub no longer serves the bytes
    hub.cli("bundle", "publish", str(later), "--node", "clinic-a")     # published again after all
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    assert sha(ready / "0.9.8.bundle") == sha(later)


def test_county_it_withdraws_a_bundle_from_the_dashboard_and_a_viewer_cannot(env, node, hub, tmp_path, release):
    key, _, node_env = release
    enroll(env, hub)
    b = make_bundle(tmp_path, key, "0.9.7", filler=5000)
    hub.cli("bundle", "publish", str(b))
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    ready = node.data_dir / "updates" / "ready"
    assert (ready / "0.9.7.bundle").exists()
    viewer = hub.browser("watcher", "viewer")
    status, page = viewer.get("/")
    table = page[page.index('<table class="bundles">'):]
    assert "0.9.7" in table and "全部 every node" in table and "已发布 published" in table and "withdraw" not in table
    status, _ = viewer.post("/bundles/withdraw", {"which": sha(b)}, token=viewer.csrf("/"))
    assert status == 403
    admin = hub.browser("it", "admin")
    page = admin.get("/")[1]
    assert f'<input type="hidden" name="which" value="{sha(b)}">' in page
    status, _ = admin.post("/bundles/withdraw", {"which": "0.0.1"}, token=admin.csrf("/"))
    assert status == 404                                   # nothing published by that name: nothing changes
    status, answer = admin.post("/bundles/withdraw", {"which": sha(b)}, token=admin.csrf("/"))
    assert status == 200 and "已撤回更新包 0.9.7" in answer and "every node" in answer
    assert "已撤回 withdrawn" in admin.get("/")[1][page.index('<table class="bundles">'):]
    assert clinic_edge(node_env, "sync", "--once", check=False).returncode == 0
    assert not list(ready.iterdir()), "the bundle withdrawn on the dashboard was still waiting to be applied"
    r = hub.cli("bundle", "withdraw", "0.9.7", check=False)
    assert r.returncode == 2 and "no published" in r.stderr


def test_a_box_whose_clock_is_years_off_signs_its_bundle_download_with_the_hubs_time(tmp_path, release):
    """The box learns the hub's offset from its signed refusal and syncs; the bundle download must
    be signed with that corrected clock too, or the hub refuses it for its time. The real hub app
    is served here with its clock passed in ten years ahead of this machine's, so to the hub this
    machine's clock is the wrong one (no clock is patched)."""
    import threading
    from datetime import datetime, timedelta, timezone

    from werkzeug.serving import make_server

    from sync import signing
    from sync.client import bundles as node_bundles
    from sync.client.transport import HubClient
    from sync.hub import bundles as hub_bundles
    from sync.hub.app import create_app
    from sync.hub.service import Hub as HubService
    from sync.hub.storage import HubStore

    def hub_now():
        return datetime.now(timezone.utc) + timedelta(days=3652)

    key, pub, _ = release
    store = HubStore(f"sqlite:///{tmp_path / 'hub.db'}")
    node_key = signing.new_key()
    store.add_node("pi-1", "CODE", now=hub_now(), ttl=timedelta(hours=1))
    store.redeem("CODE", signing.public_text(node_key), now=hub_now())
    service = HubService(store, signing.new_key(), bundle_dir=tmp_path / "hub-bundles")
    item = hub_bundles.publish(store, service.bundle_dir, make_bundle(tmp_path, key, "0.9.0"), "pi-1", now=hub_now())
    server = make_server("127.0.0.1", 0, create_app(service, now=hub_now, secret_key=b"t"), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = HubClient(f"http://127.0.0.1:{server.server_port}", node="pi-1", key=node_key,
                           hub_pubkey=service.pubkey, timeout=10)
        assert client.call("POST", "/v1/hello", b"{}").status == 200      # refused once, then signed again
        assert abs(client.offset - 3652 * 86400) < 60
        data = tmp_path / "node"
        ready, got = node_bundles.fetch(client, item, data, pub)
        assert ready == data / "updates" / "ready" / "0.9.0.bundle"
        assert sha(ready) == item["sha256"] and got == item["size"]
    finally:
        server.shutdown()
        store.engine.dispose()
