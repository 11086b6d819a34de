"""Signed times are checked (issue 14 item 6): X-CE-Time must be within the hub's window, which is
shorter than the nonce retention; a node whose clock is years off learns the offset from the hub's
signed refusal and still syncs (ARCHITECTURE principle 4: the node's clock is untrusted)."""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone

import pytest

from edge.core import config as config_mod
from edge.core.node import Node
from sync import protocol, signing
from sync.client import state, tls
from sync.client.controller import Cycle
from sync.client.transport import HubClient
from sync_fixtures import Hub, add_records, enroll, hub_records, node_records, sync_env
from conftest import SetClock


@pytest.fixture
def hub(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}").start()
    yield h
    h.stop()


def _hello(client: HubClient, sent_at: str, nonce: str | None = None):
    body = b"{}"
    headers = protocol.sign_request(client.key, "POST", "/v1/hello", client.node, nonce or secrets.token_urlsafe(18),
                                    sent_at, body)
    return client.raw("POST", "/v1/hello", body, headers), headers


def test_a_request_signed_in_2001_is_refused_with_the_hubs_signed_time(env, node, hub):
    enroll(env, hub)
    ident = state.identity(node)
    client = HubClient(hub.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=10,
                       context=tls.client_context(node.data_dir))
    (status, rh, data, _s, _g), headers = _hello(client, "2001-09-09T01:46:40.000Z")
    assert status == 401, data
    doc = json.loads(data)
    assert "request time 2001-09-09T01:46:40.000Z" in doc["error"] and "allowed ±600 s" in doc["error"]
    signing.verify(signing.public_from_text(ident.hub_pubkey), signing.unb64({k.lower(): v for k, v in rh.items()}[protocol.H_SIG.lower()]),
                    protocol.response_bytes(protocol.request_auth(headers)[1], data))
    hub_time = datetime.fromisoformat(doc["hub_time"].replace("Z", "+00:00"))
    assert abs((hub_time - datetime.now(timezone.utc)).total_seconds()) < 30
    (status, _rh, data, _s, _g), _ = _hello(client, "not a time")
    assert status == 401 and b"ISO 8601" in data


def test_a_request_replayed_after_its_nonce_is_pruned_is_refused(tmp_path):
    from sync.hub.app import create_app
    from sync.hub.service import Hub as HubService
    from sync.hub.storage import HubStore

    t0 = datetime.now(timezone.utc)
    clock = {"now": t0}
    store = HubStore(f"sqlite:///{tmp_path / 'hub.db'}")
    key = signing.new_key()
    store.add_node("a", "CODE", now=t0, ttl=timedelta(hours=1))
    store.redeem("CODE", signing.public_text(key), now=t0)
    hub = HubService(store, signing.new_key())
    client = create_app(hub, now=lambda: clock["now"], secret_key=b"t").test_client()
    headers = protocol.sign_request(key, "POST", "/v1/hello", "a", secrets.token_urlsafe(18),
                                    protocol.utc_now_iso(t0), b"{}")
    assert client.post("/v1/hello", data=b"{}", headers=headers).status_code == 200
    assert client.post("/v1/hello", data=b"{}", headers=headers).status_code == 409   # nonce remembered
    clock["now"] = t0 + timedelta(minutes=31)
    store.prune(nonces_before=clock["now"] - hub.nonce_retention, chunks_before=clock["now"] - timedelta(days=30))
    resp = client.post("/v1/hello", data=b"{}", headers=headers)
    assert resp.status_code == 401 and "from the hub's clock" in json.loads(resp.data)["error"]


def test_the_nonce_retention_must_be_at_least_twice_the_window(env):
    bad = {**env, "CLINIC_EDGE_HUB_TIME_WINDOW_SECONDS": "1200", "CLINIC_EDGE_HUB_NONCE_RETENTION_SECONDS": "1800"}
    with pytest.raises(config_mod.ConfigError, match="at least twice"):
        config_mod.load(env=bad)


def test_a_node_whose_clock_is_ten_years_off_still_syncs(env, node, hub):
    enroll(env, hub)
    node.close()
    wrong = SetClock(datetime.now(timezone.utc) - timedelta(days=3652), "boot-x", 1000.0)
    pi = Node(config_mod.load(env=sync_env(env)), clock=wrong)
    add_records(pi, 12)
    result = Cycle(pi, state.identity(pi)).run()
    assert result.ok, result.error
    assert sorted(hub_records(hub)) == sorted(node_records(pi))
    offset = state.get(pi.store, "clock_offset_s")
    assert abs(offset - 3652 * 86400) < 60
    pi.close()
