"""Enrollment, uplink, receipts and refusals, against the real hub process on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import secrets

import sqlalchemy as sa

from conftest import clinic_edge
from edge.core import outbox
from edge.core.node import Node
from sync import protocol, signing
from sync.client import batcher, state
from sync.client import tls
from sync.client.transport import HubClient
from sync_fixtures import (add_records, enroll, hub, hub_database, hub_records, node_records,  # noqa: F401
                           sync_env)


def test_enrolled_node_delivers_every_record_once_and_marks_the_outbox(env, node, hub):
    enroll(env, hub, cli=True)
    key = state.key_path(node)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    add_records(node, 120)
    r = clinic_edge(sync_env(env), "sync", "--once", check=False)
    assert r.returncode == 0, r.stderr
    held = [(r["kind"], r["id"], r["version"]) for r in hub.records()]     # `hub export --json` (PINNED)
    assert sorted(held) == sorted(node_records(node)) and len(held) == 120
    assert {k for k, _, _ in held} == {"reading", "resident", "follow_up", "report", "referral"}
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL") == 0
    status = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    assert status["backlog"] == 0 and status["last_success"] and status["bytes_today"] > 0
    readings = node.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'reading'")
    assert status["usage_today"]["reading"]["records"] == readings
    assert abs(status["clock_offset_s"]) < 2
    # county IT's dashboard shows the node: last contact, records, clock offset, software version
    page = hub.browser().get("/")[1]
    assert 'data-node="clinic-a"' in page and "clinic-edge/0.1.0" in page
    assert '<span class="records">120</span> (' in page and " s ago" in page
    # nothing new: a second cycle sends no batch and the hub still holds each record once
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    assert len(hub_records(hub)) == 120


def test_sync_once_fails_while_the_hub_is_unreachable(env, node, hub):
    enroll(env, hub)
    add_records(node, 5)
    hub.stop()
    r = clinic_edge(sync_env(env, attempts=2), "sync", "--once", check=False)
    assert r.returncode == 1
    status = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    assert status["backlog"] == 5 and status["last_error"]


def test_a_bad_record_is_quarantined_with_its_reason_and_the_rest_is_stored(env, node, hub):
    enroll(env, hub)
    add_records(node, 10)
    with node.store.atomic() as conn:
        outbox.add(conn, kind="reading", record_id="r-broken", payload={"value": 1}, at=node.clock.now())
    r = clinic_edge(sync_env(env), "sync", "--once", check=False)
    assert r.returncode == 0 and "quarantined" in r.stderr
    assert len(hub_records(hub)) == 10
    status = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    assert status["quarantined"] == 1
    assert status["quarantined_records"][0]["record_id"] == "r-broken"
    assert "lacks code" in status["quarantined_records"][0]["reason"]
    # not retried forever: the next cycle sends nothing for it
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0


def _client(node: Node, hub, *, key=None, name=None) -> HubClient:
    ident = state.identity(node)
    return HubClient(hub.url, node=name or ident.node, key=key or ident.key, hub_pubkey=ident.hub_pubkey, timeout=5,
                     context=tls.client_context(node.data_dir))


def _signed_put(client: HubClient, batch: batcher.Batch, body: bytes, nonce: str | None = None):
    path = f"/v1/uploads/{batch.batch_id}?offset=0&total={len(body)}"
    nonce = nonce or secrets.token_urlsafe(18)
    headers = protocol.sign_request(client.key, "PUT", path, client.node, nonce, protocol.utc_now_iso(), body)
    return client.raw("PUT", path, body, headers), headers


def test_hub_refuses_tampered_wrong_key_unknown_node_unsigned_and_replayed(env, node, hub):
    enroll(env, hub)
    add_records(node, 20)
    ident = state.identity(node)
    batch = batcher.build(node.store, ident, limit=100, now=node.clock.now())
    client = _client(node, hub)

    tampered = bytearray(batch.envelope)
    tampered[-5] ^= 0x01
    (status, _h, body, _s, _g), _ = _signed_put(client, batch, bytes(tampered))
    assert status == 401 and b"not signed by node" in body

    wrong = _client(node, hub, key=signing.new_key())
    (status, _h, body, _s, _g), _ = _signed_put(wrong, batch, batch.envelope)
    assert status == 401

    ghost = _client(node, hub, name="ghost-clinic")
    (status, _h, body, _s, _g), _ = _signed_put(ghost, batch, batch.envelope)
    assert status == 401 and b"not enrolled" in body

    status, _h, body, _s, _g = client.raw("PUT", f"/v1/uploads/{batch.batch_id}?offset=0&total=9", b"x" * 9)
    assert status == 401 and b"unsigned" in body
    assert hub_records(hub) == []

    # the genuine request is stored once; the very same request sent again is a replay
    (status, _h, body, _s, _g), headers = _signed_put(client, batch, batch.envelope)
    assert status == 200 and json.loads(body)["receipt"]["stored"] == 20
    status, _h, body, _s, _g = client.raw("PUT", f"/v1/uploads/{batch.batch_id}?offset=0&total="
                                          f"{len(batch.envelope)}", batch.envelope, headers)
    assert status == 409 and b"replayed" in body
    assert len(hub_records(hub)) == 20


def test_resending_a_batch_after_a_lost_receipt_returns_the_same_receipt(env, node, hub):
    enroll(env, hub)
    add_records(node, 15)
    ident = state.identity(node)
    batch = batcher.build(node.store, ident, limit=100, now=node.clock.now())
    client = _client(node, hub)
    (s1, _h, b1, _s, _g), _ = _signed_put(client, batch, batch.envelope)
    (s2, _h, b2, _s, _g), _ = _signed_put(client, batch, batch.envelope)
    assert s1 == s2 == 200
    assert json.loads(b1)["receipt"] == json.loads(b2)["receipt"]
    receipt = json.loads(b1)["receipt"]
    protocol.verify_document(signing.public_from_text(ident.hub_pubkey), receipt)
    assert receipt["high_water"] == batch.seq_to and receipt["stored"] == 15
    assert len(hub_records(hub)) == 15
    # the node, whose receipt was "lost", settles the batch on its next cycle without storing twice
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    assert len(hub_records(hub)) == 15
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL") == 0


def test_enrollment_code_works_once_and_expires(env, hub, tmp_path):
    code = hub.add_node("clinic-b")
    second = {**env, "CLINIC_EDGE_DATA": str(tmp_path / "other")}
    clinic_edge(env, "enroll", "--hub", hub.url, "--code", code)
    r = clinic_edge(second, "enroll", "--hub", hub.url, "--code", code, check=False)
    assert r.returncode == 2 and "already used" in r.stderr

    code = hub.add_node("clinic-c")
    store = hub.store()
    with store.begin() as c:
        c.execute(sa.text("UPDATE hub_codes SET expires_at = '2000-01-01T00:00:00.000Z' WHERE node = 'clinic-c'"))
    store.engine.dispose()
    r = clinic_edge(second, "enroll", "--hub", hub.url, "--code", code, check=False)
    assert r.returncode == 2 and "expired" in r.stderr
    r = clinic_edge(second, "enroll", "--hub", hub.url, "--code", "NOPE-NOPE-NOPE", check=False)
    assert r.returncode == 2 and "unknown enrollment code" in r.stderr
    nodes = {n["name"]: n for n in json.loads(hub.cli("node", "list", "--json").stdout)}
    assert nodes["clinic-b"]["enrolled"] and not nodes["clinic-c"]["enrolled"]


def test_urgent_referrals_go_first_and_ignore_the_byte_budget(env, node, hub):
    enroll(env, hub)
    add_records(node, 40)                                 # bulk history (and a few referrals)
    limited = sync_env(env, daily_budget_bytes=1500)
    r = clinic_edge(limited, "sync", "--once", check=False)
    assert r.returncode == 3 and "budget" in r.stderr
    held = hub_records(hub)
    assert held and {k for k, _, _ in held} == {"referral"}
    status = json.loads(clinic_edge(limited, "sync", "status", "--json").stdout)
    assert status["backlog"] == 40 - len(held)
    assert status["usage_today"]["referral"]["records"] == len(held)
    assert status["usage_today"]["referral"]["bytes"] > 0
    # tomorrow's budget (here: none) lets the rest go
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    assert sorted(hub_records(hub)) == sorted(node_records(node))


def test_batches_shrink_when_the_hub_says_too_large(env, node, hub_database, tmp_path):
    from sync_fixtures import Hub

    d = tmp_path / "smallhub"
    d.mkdir()
    small = Hub(env, d, hub_database, max_batch_bytes=2048).start()
    try:
        enroll(env, small)
        add_records(node, 200)
        r = clinic_edge(sync_env(env, batch_records=400, attempts=20), "sync", "--once", check=False)
        assert r.returncode == 0, r.stderr
        assert sorted(hub_records(small)) == sorted(node_records(node))
        assert state.get(node.store, "batch_records") < 400
    finally:
        small.stop()


def test_usb_bundle_imported_twice_and_then_uploaded_stores_nothing_twice(env, node, hub, tmp_path):
    enroll(env, hub)
    add_records(node, 50)
    bundle = tmp_path / "usb" / "clinic-a.bundle"
    bundle.parent.mkdir()
    clinic_edge(env, "sync", "export-bundle", str(bundle))
    assert hub.cli("import-bundle", str(bundle)).stdout.startswith("1 batches read, 50 new records stored")
    assert "0 new records stored" in hub.cli("import-bundle", str(bundle)).stdout
    assert len(hub_records(hub)) == 50
    add_records(node, 10, start=50)
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    assert sorted(hub_records(hub)) == sorted(node_records(node))
    assert len(hub_records(hub)) == 60
    # a bundle with a flipped byte is refused whole (it no longer decrypts)
    data = bytearray(bundle.read_bytes())
    data[-3] ^= 0x20
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(bytes(data))
    r = hub.cli("import-bundle", str(bad), check=False)
    assert r.returncode != 0 and "cannot decrypt" in r.stderr and "changed" in r.stderr
