"""A county hub holds nodes of both crypto suites (docs/crypto-suites.md): an ed25519 node and an sm
node upload to the same real hub process (HTTPS on loopback, SQLite and PostgreSQL), each batch
verified in its own suite; forged signatures are refused, said why and counted; a node re-enrolled
in the sm suite still gets the batches it signed before accepted; and what nodes and hubs sent
before suites existed (no suite name) still verifies."""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import clinic_edge
from edge.core import config as config_mod
from edge.core.node import Node
from sync import protocol, record_codec, signing
from sync.client import batcher, state, tls
from sync.client.transport import HubClient
from sync.hub import storage
from sync.hub.service import Hub as HubService
from sync_fixtures import Hub, add_records, hub_database, node_records, sync_env  # noqa: F401


@pytest.fixture
def sm_hub(hub_database, tmp_path, env):
    """A county that chose sm ([hub] suite = sm): new codes are for sm, ed25519 ones on request."""
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, hub_database, suite="sm").start()
    yield h
    h.stop()


def _node_env(tmp_path: Path, env: dict[str, str], name: str) -> dict[str, str]:
    d = tmp_path / name
    d.mkdir()
    return {**env, "CLINIC_EDGE_DATA": str(d)}


def _enroll(hub: Hub, env: dict[str, str], name: str, suite: str, *again: str) -> None:
    """County IT's `hub node add` and the installer's `clinic-edge enroll`, as they run them."""
    doc = json.loads(hub.cli("node", "add", name, "--json", "--suite", suite, *again).stdout)
    assert doc["suite"] == suite and doc["code"].startswith("SM-") == (suite == "sm")
    clinic_edge(env, "enroll", "--hub", hub.url, "--hub-key", doc["hub_key"], "--code", doc["code"],
                *(["--force"] if again else []))


def _held(hub: Hub) -> list[tuple[str, str, str, int]]:
    with hub.store().read() as c:
        return [tuple(r) for r in c.execute(sa.select(storage.records.c.node, storage.records.c.kind,
                                                      storage.records.c.record_id, storage.records.c.version))]


def _receipts(hub: Hub, node: str) -> list[dict]:
    with hub.store().read() as c:
        return [json.loads(r) for r in c.execute(sa.select(storage.batches.c.receipt)
                                                  .where(storage.batches.c.node == node)).scalars()]


def _client(node: Node, hub: Hub, key=None) -> HubClient:
    ident = state.identity(node)
    return HubClient(hub.url, node=ident.node, key=key or ident.key, hub_pubkey=ident.hub_pubkey, timeout=5,
                     context=tls.client_context(node.data_dir))


def _put(client: HubClient, batch_id: str, body: bytes, key=None):
    path = f"/v1/uploads/{batch_id}?offset=0&total={len(body)}"
    headers = protocol.sign_request(key or client.key, "PUT", path, client.node, secrets.token_urlsafe(18),
                                    protocol.utc_now_iso(), body)
    status, _h, data, _s, _g = client.raw("PUT", path, body, headers)
    return status, json.loads(data)


def test_one_hub_holds_an_ed25519_node_and_an_sm_node_each_record_once(env, tmp_path, sm_hub):
    envs = {"clinic-ed": _node_env(tmp_path, env, "clinic-ed"), "clinic-sm": _node_env(tmp_path, env, "clinic-sm")}
    _enroll(sm_hub, envs["clinic-ed"], "clinic-ed", "ed25519")
    _enroll(sm_hub, envs["clinic-sm"], "clinic-sm", "sm")
    nodes = {name: Node(config_mod.load(env=e)) for name, e in envs.items()}
    try:
        for name, n in nodes.items():
            add_records(n, 60)
        expected = set()
        for name, n in nodes.items():
            r = clinic_edge(sync_env(envs[name], batch_max_records=25), "sync", "--once", check=False)
            assert r.returncode == 0, r.stderr
            expected |= {(name, *k) for k in node_records(n)}
            assert n.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL") == 0
        # the node's key is of the suite its code was for; the hub keeps it with its suite
        assert b"PRIVATE KEY" in state.key_path(nodes["clinic-sm"]).read_bytes()
        assert state.identity(nodes["clinic-sm"]).key.suite == "sm"
        assert state.identity(nodes["clinic-ed"]).key.suite == "ed25519"
        assert sm_hub.store().node("clinic-sm")["pubkey"].startswith("sm:")
        assert signing.text_suite(sm_hub.store().node("clinic-ed")["pubkey"]) == "ed25519"
        # every record exactly once, batches of each node answered in its own suite
        held = _held(sm_hub)
        assert len(held) == len(set(held)) == 120 and set(held) == expected
        sm_receipts, ed_receipts = _receipts(sm_hub, "clinic-sm"), _receipts(sm_hub, "clinic-ed")
        assert sum(r["stored"] for r in sm_receipts) == sum(r["stored"] for r in ed_receipts) == 60
        # each node verified its compact answers in its own suite (its outbox is acked); the stored receipts
        # are not signed until a /v1 node asks (docs/api.md, "Uploads")
        assert not any("sig" in r or "suite" in r for r in sm_receipts + ed_receipts)

        # forgeries against the sm node: a batch in the wrong suite, a tampered one, a wrong request tag
        sm = nodes["clinic-sm"]
        add_records(sm, 5, start=1000)
        batch = batcher.build(sm.store, state.identity(sm), limit=100, now=sm.clock.now())
        client = _client(sm, sm_hub)
        wrong_suite = protocol.seal(signing.new_key("ed25519"), {"node": "clinic-sm", "batch": batch.batch_id,
                                                                  "from": batch.seq_from, "to": batch.seq_to,
                                                                  "n": 5}, [])
        status, answer = _put(client, batch.batch_id, wrong_suite)
        assert status == 401 and answer["error"] == (
            f"batch {batch.batch_id} is signed in the ed25519 suite, but node clinic-sm has no ed25519 key at "
            "this hub (its key is sm); nothing stored")
        tampered = bytearray(batch.envelope)
        tampered[-3] ^= 0x01
        status, answer = _put(client, batch.batch_id, bytes(tampered))
        assert status == 401 and answer["error"] == (
            f"batch {batch.batch_id} is not signed by node clinic-sm's sm key; nothing stored")
        status, answer = _put(client, batch.batch_id, batch.envelope, key=signing.new_key("ed25519"))
        assert status == 401 and answer["error"] == ("request signature does not match node clinic-sm's key: "
                                                     "signed in the ed25519 suite, but the key is sm")
        assert len(_held(sm_hub)) == 120
        assert sm_hub.store().refusal_counts() == {"clinic-sm": 3}
        listed = {r["name"]: r["refused_signatures"] for r in json.loads(sm_hub.cli("node", "list", "--json").stdout)}
        assert listed == {"clinic-ed": 0, "clinic-sm": 3}     # county IT sees them
        # the genuine batch still goes
        status, answer = _put(client, batch.batch_id, batch.envelope)
        assert status == 200 and answer["receipt"]["stored"] == 5 and answer["receipt"]["suite"] == "sm"
        protocol.verify_document(signing.public_from_text(state.identity(sm).hub_pubkey), answer["receipt"])
    finally:
        for n in nodes.values():
            n.close()


def test_a_node_re_enrolled_in_sm_keeps_its_old_batches_accepted(env, tmp_path, sm_hub):
    e = _node_env(tmp_path, env, "clinic-a")
    _enroll(sm_hub, e, "clinic-a", "ed25519")
    n = Node(config_mod.load(env=e))
    try:
        add_records(n, 10)
        old = batcher.build(n.store, state.identity(n), limit=100, now=n.clock.now())   # sealed, not yet sent
        assert protocol.open_envelope(old.envelope).suite == "ed25519"
        _enroll(sm_hub, e, "clinic-a", "sm", "--re-enroll")
        assert state.identity(n).key.suite == "sm"
        assert [b.envelope for b in batcher.pending(n.store)] == [old.envelope]   # still signed with the old key
        add_records(n, 10, start=100)
        r = clinic_edge(sync_env(e), "sync", "--once", check=False)
        assert r.returncode == 0, r.stderr
        assert len(_held(sm_hub)) == 20 and n.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL") == 0
        receipts = _receipts(sm_hub, "clinic-a")
        assert old.batch_id in {r["batch"] for r in receipts} and sum(r["stored"] for r in receipts) == 20
        # asked by /v1/, the old batch's full receipt is signed in the node's suite of now
        client = _client(n, sm_hub)
        try:
            full = client.call("GET", f"/v1/uploads/{old.batch_id}?total=1").doc["receipt"]
        finally:
            client.close()
        assert full["suite"] == "sm" and full["batch"] == old.batch_id
        protocol.verify_document(signing.public_from_text(state.identity(n).hub_pubkey), full)
        assert sm_hub.store().refusal_counts() == {}
        with sm_hub.store().read() as c:
            kept = c.execute(sa.select(storage.node_keys.c.suite).where(storage.node_keys.c.node == "clinic-a")).all()
        assert [tuple(k) for k in kept] == [("ed25519",)]
    finally:
        n.close()


# ---- the form before suites existed (PINNED: no suite name = ed25519) ------------------------------

def _old_envelope(key: Ed25519PrivateKey, header: dict, records: list) -> bytes:
    """An envelope exactly as a node before issue 21 sealed it: no "s" in the header."""
    import struct

    hbytes = protocol.canonical({**header, "v": 1})
    head = protocol.MAGIC + struct.pack(">H", len(hbytes)) + hbytes
    payload = record_codec.encode_records(records)
    return head + key.sign(head + payload) + payload


def _old_auth(key: Ed25519PrivateKey, method: str, path: str, node: str, body: bytes, now: datetime) -> dict:
    import base64
    import hashlib

    nonce, sent = secrets.token_urlsafe(18), protocol.utc_now_iso(now)
    msg = b"\n".join([b"CE-REQ-1", method.encode(), path.encode(), node.encode(), nonce.encode(), sent.encode(),
                      hashlib.sha256(body).hexdigest().encode()])
    return {"X-CE-Auth": f"{node} {nonce} {sent} {base64.urlsafe_b64encode(key.sign(msg)).decode().rstrip('=')}"}


def test_an_ed25519_envelope_auth_and_receipt_without_a_suite_name_still_verify(tmp_path):
    now = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
    hub = HubService(storage.HubStore(f"sqlite:///{tmp_path / 'hub.db'}"), signing.new_key())
    raw_key = Ed25519PrivateKey.generate()
    pubkey = signing.b64(raw_key.public_key().public_bytes_raw())      # the text an old node enrolled with
    hub.store.add_node("old-box", "OLDC-ODEA-BCDE", now=now, ttl=timedelta(hours=1))
    assert hub.enroll("OLDC-ODEA-BCDE", pubkey, now=now)["hub_pubkey"] == hub.pubkey
    recs = [{"kind": "reading", "id": "r1", "version": 1,
             "payload": {"code": "8867-4", "unit": "/min", "effective_time": "2026-12-03T07:59:00.000Z"}}]
    env = _old_envelope(raw_key, {"node": "old-box", "batch": "b1", "from": 1, "to": 1, "n": 1}, recs)
    path = "/v1/uploads/b1?offset=0&total=%d" % len(env)
    row = hub.signed_by("PUT", path, _old_auth(raw_key, "PUT", path, "old-box", env, now), env, now=now)
    # what /v1/uploads/ answers: the stored receipt, signed as a document of its own (Hub.full_receipt)
    receipt = hub.full_receipt(hub.accept_batch(env, via="upload", now=now, sender="old-box", sender_key=row["pubkey"]))
    assert receipt["stored"] == 1 and "suite" not in receipt
    # an old node verifies the receipt the way it always did: Ed25519 over CE-DOC-1 + canonical body
    body = {k: v for k, v in receipt.items() if k != "sig"}
    hub.key.key.public_key().verify(signing.unb64(receipt["sig"]), b"CE-DOC-1\n" + protocol.canonical(body))
    # and a new node verifies a receipt an old hub signed (no suite in it)
    old_hub = Ed25519PrivateKey.generate()
    doc = {"type": "receipt", "batch": "b1"}
    signed = {**doc, "sig": signing.b64(old_hub.sign(b"CE-DOC-1\n" + protocol.canonical(doc)))}
    old_pub = signing.b64(old_hub.public_key().public_bytes_raw())
    assert protocol.verify_document(signing.public_from_text(old_pub), signed) == doc
    # the old hub key's fingerprint is what county IT always typed
    import hashlib
    assert signing.fingerprint(old_pub) == hashlib.sha256(old_hub.public_key().public_bytes_raw()).hexdigest()
    assert hub.store.refusal_counts() == {}


def test_a_usb_bundle_of_an_sm_node_is_sealed_with_sm2_and_imported_once(env, tmp_path, sm_hub):
    e = _node_env(tmp_path, env, "clinic-sm")
    _enroll(sm_hub, e, "clinic-sm", "sm")
    n = Node(config_mod.load(env=e))
    try:
        add_records(n, 30)
    finally:
        n.close()
    stick = tmp_path / "usb" / "clinic-sm.bundle"
    stick.parent.mkdir()
    clinic_edge(e, "sync", "export-bundle", str(stick))
    assert stick.read_bytes()[:4] == b"CES1"      # SM2-wrapped SM4-GCM key (edge/core/sealed.py), not X25519
    assert sm_hub.cli("import-bundle", str(stick)).stdout.startswith("1 batches read, 30 new records stored")
    assert "0 new records stored" in sm_hub.cli("import-bundle", str(stick)).stdout
    assert len(_held(sm_hub)) == 30 and not any("sig" in r for r in _receipts(sm_hub, "clinic-sm"))


def test_in_the_sm_suite_every_signed_body_hash_is_sm3_and_ed25519_stays_sha256():
    """A request's and the hub's answer's signatures cover the body's hash in the node's suite (an
    assessor checks that no SHA-256 sits under an SM2 signature); ed25519's are as they always were."""
    import hashlib

    from edge.core import suites
    body = b'{"high_water":7}'
    sm3, sha = suites.suite("sm").digest(body).hex().encode(), hashlib.sha256(body).hexdigest().encode()
    assert protocol.response_bytes("n1", body, "sm") == b"CE-RESP-1\nn1\n" + sm3
    assert protocol.response_bytes("n1", body) == b"CE-RESP-1\nn1\n" + sha
    assert protocol.request_bytes("PUT", "/v1/x", "box", "n1", "t", body, "sm").endswith(b"\n" + sm3)

