"""The compact receipt (issue 17.4, docs/api.md "Uploads"): the hub's one signature over the answer
binds the node and the batch, so the receipt carries neither; the node keeps it as its proof and
clears the outbox only on a receipt that verifies; a hub still answers a node of before the way it
expects. Against a real hub process (plain HTTP on loopback, so a relay can alter the answers)."""
from __future__ import annotations

import json
import re
import secrets
import socket
import threading

import pytest

from edge.core import config as config_mod
from edge.core.node import Node
from sync import protocol, signing
from sync.client import batcher, state
from sync.client.controller import Cycle
from sync.client.transport import HubClient
from sync_fixtures import Hub, _one_exchange, _read_all, _read_http, add_records, enroll, hub_records, sync_env


@pytest.fixture
def plain_hub(env, tmp_path):
    d = tmp_path / "hubdata"
    d.mkdir()
    hub = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}", tls=False).start()
    enroll(env, hub)
    yield hub
    hub.stop()


class AlteringRelay:
    """Passes each exchange to the hub and hands the node `alter(request, answer)` instead of the
    hub's answer (one exchange per connection)."""

    def __init__(self, upstream: int, alter):
        self.upstream, self.alter, self.altered = upstream, alter, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            request = _read_http(client)
            if request is None:
                return
            with socket.create_connection(("127.0.0.1", self.upstream), 10) as up:
                up.sendall(_one_exchange(request))
                answer = _read_all(up)
            changed = self.alter(request, answer)
            self.altered += changed != answer
            client.sendall(changed)


def _with_body(answer: bytes, body: bytes, signature: str | None = None) -> bytes:
    head, _, _ = answer.partition(b"\r\n\r\n")
    head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head)
    if signature is not None:
        head = re.sub(rb"X-CE-Signature: \S+", b"X-CE-Signature: " + signature.encode(), head)
    return head + b"\r\n\r\n" + body


def _receipt_answer(request: bytes, answer: bytes) -> bool:
    return request.startswith((b"PUT /v2/u/", b"GET /v2/u/")) and b'"r":' in answer


def _outbox(node) -> list[tuple]:
    return [(r["seq"], r["batch_id"], r["acked_at"], r["quarantined_at"])
            for r in node.store.query("SELECT seq, batch_id, acked_at, quarantined_at FROM outbox ORDER BY seq")]


def _cycle(env) -> object:
    n = Node(config_mod.load(env=env))
    try:
        return Cycle(n, state.identity(n), sleep=lambda s: None).run()
    finally:
        n.close()


def altered_rejection(request: bytes, answer: bytes) -> bytes:
    """The hub's answer, its signature kept, saying the hub refused a record it stored."""
    if not _receipt_answer(request, answer):
        return answer
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    body["r"]["x"] = [["reading", "r-0", 1, "refused"]]
    return _with_body(answer, json.dumps(body, separators=(",", ":")).encode())


FORGER = signing.new_key()


def forged_by_another_key(request: bytes, answer: bytes) -> bytes:
    """A receipt made by someone in between who holds a key of their own, correctly bound to this
    node, this batch and the request's nonce."""
    if not _receipt_answer(request, answer):
        return answer
    batch = request.split(b" ")[1].split(b"/")[3].split(b"?")[0].decode()
    auth = re.search(rb"X-CE-Auth: (\S+) (\S+) ", request)
    node, nonce = auth.group(1).decode(), auth.group(2).decode()
    body = b'{"r":{"s":1},"d":0}'
    sig = signing.b64(signing.sign(FORGER, protocol.receipt_bytes(node, batch, nonce, body)))
    return _with_body(answer, body, sig)


@pytest.mark.parametrize("alter", [altered_rejection, forged_by_another_key], ids=["altered", "forged"])
def test_a_receipt_that_does_not_verify_is_refused_and_leaves_the_outbox_unchanged(env, plain_hub, alter):
    node = Node(config_mod.load(env=env))
    add_records(node, 6)
    before = _outbox(node)
    node.close()
    relay = AlteringRelay(plain_hub.port, alter)
    try:
        result = _cycle(sync_env({**env, "CLINIC_EDGE_SYNC_HUB_URL": relay.url}, attempts=2))
    finally:
        relay.stop()
    assert relay.altered >= 1
    assert not result.ok and "failed the hub signature check" in result.error
    node = Node(config_mod.load(env=env))
    try:
        after = _outbox(node)
        assert [(s, a, q) for s, _b, a, q in after] == [(s, a, q) for s, _b, a, q in before]   # nothing acked or quarantined
        assert node.store.scalar("SELECT count(*) FROM sync_batches WHERE state = 'pending'") >= 1
    finally:
        node.close()
    assert len(hub_records(plain_hub)) == 6          # the hub did store them: only the answer was false

    # the genuine receipt, asked for on the next cycle, settles the same batch without a second copy
    result = _cycle(sync_env({**env, "CLINIC_EDGE_SYNC_HUB_URL": plain_hub.url}))
    assert result.ok, result.error
    node = Node(config_mod.load(env=env))
    try:
        assert all(a is not None and q is None for _s, _b, a, q in _outbox(node)), _outbox(node)
    finally:
        node.close()
    assert len(hub_records(plain_hub)) == 6


def test_the_kept_receipt_proves_this_batch_of_this_node_and_carries_neither(env, plain_hub):
    node = Node(config_mod.load(env=env))
    add_records(node, 4)
    node.close()
    assert _cycle(sync_env({**env, "CLINIC_EDGE_SYNC_HUB_URL": plain_hub.url})).ok
    node = Node(config_mod.load(env=env))
    try:
        ident = state.identity(node)
        row = node.store.query("SELECT batch_id, receipt FROM sync_batches WHERE state = 'acked'")[0]
        batch_id, kept = row["batch_id"], row["receipt"]
    finally:
        node.close()
    proof = json.loads(kept)["proof"]
    assert batch_id not in proof["body"] and ident.node not in proof["body"]
    hub_pub = signing.public_from_text(ident.hub_pubkey)
    assert protocol.verify_receipt_proof(hub_pub, ident.node, batch_id, proof) == {"stored": 4, "rejected": []}
    for node_name, batch in ((ident.node, "another-batch"), ("clinic-b", batch_id)):
        with pytest.raises(protocol.BadSignature):
            protocol.verify_receipt_proof(hub_pub, node_name, batch, proof)
    with pytest.raises(protocol.BadSignature):
        protocol.verify_receipt_proof(hub_pub, ident.node, batch_id, {**proof, "body": proof["body"].replace("4", "5")})


def _signed(client: HubClient, method: str, path: str, body: bytes = b""):
    nonce = secrets.token_urlsafe(16)
    headers = protocol.sign_request(client.key, method, path, client.node, nonce, protocol.utc_now_iso(), body)
    status, rh, data, _s, _g = client.raw(method, path, body, headers)
    return status, rh, data, nonce


def test_a_node_of_before_uploads_the_old_way_and_its_batch_is_then_known_to_the_compact_form(env, plain_hub):
    """Hubs are updated before nodes: an old node's /v1/uploads/ exchange is answered as it was (the
    full receipt, a signed document of its own, in an answer signed over the nonce alone), and the
    same batch asked for by the compact form after the node's update comes back as its compact
    receipt."""
    node = Node(config_mod.load(env=env))
    try:
        add_records(node, 5)
        ident = state.identity(node)
        batch = batcher.build(node.store, ident, limit=100, now=node.clock.now())
    finally:
        node.close()
    client = HubClient(plain_hub.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=10)
    hub_pub = signing.public_from_text(ident.hub_pubkey)
    total = len(batch.envelope)

    status, rh, data, nonce = _signed(client, "GET", f"/v1/uploads/{batch.batch_id}?total={total}")
    assert status == 200 and json.loads(data)["offset"] == 0
    status, rh, data, nonce = _signed(client, "PUT", f"/v1/uploads/{batch.batch_id}?offset=0&total={total}",
                                      batch.envelope)
    assert status == 200
    signing.verify(hub_pub, signing.unb64(rh["X-CE-Signature"]), protocol.response_bytes(nonce, data))
    answer = json.loads(data)
    assert {"hub_time", "downlink"} <= set(answer)
    receipt = protocol.verify_document(hub_pub, answer["receipt"])
    assert (receipt["type"], receipt["node"], receipt["batch"], receipt["stored"]) == \
        ("receipt", ident.node, batch.batch_id, 5)
    assert (receipt["from"], receipt["to"], receipt["rejected"]) == (batch.seq_from, batch.seq_to, [])

    status, rh, data, nonce = _signed(client, "GET", f"/v2/u/{batch.batch_id}?t={total}")
    assert status == 200
    signing.verify(hub_pub, signing.unb64(rh["X-CE-Signature"]),
                   protocol.receipt_bytes(ident.node, batch.batch_id, nonce, data))
    assert json.loads(data) == {"r": {"s": 5}, "d": 0}
    assert len(hub_records(plain_hub)) == 5


def test_a_compact_upload_to_a_hub_without_the_compact_form_names_the_order_of_updates(env, plain_hub):
    """The hub's 404 for /v2/u/ (a hub older than its node) is reported as such, and nothing is acked."""
    node = Node(config_mod.load(env=env))
    add_records(node, 2)
    node.close()

    def old_hub(request: bytes, answer: bytes) -> bytes:
        if request.startswith((b"PUT /v2/", b"GET /v2/")):
            return b'HTTP/1.1 404 NOT FOUND\r\nContent-Length: 21\r\n\r\n{"error":"Not Found"}'
        return answer

    relay = AlteringRelay(plain_hub.port, old_hub)
    try:
        result = _cycle(sync_env({**env, "CLINIC_EDGE_SYNC_HUB_URL": relay.url}))
    finally:
        relay.stop()
    assert not result.ok and "updates the hub first" in result.error
    node = Node(config_mod.load(env=env))
    try:
        assert all(a is None for _s, _b, a, _q in _outbox(node))
    finally:
        node.close()


def _stored_receipts(tmp_path) -> dict[str, dict]:
    import sqlite3

    with sqlite3.connect(tmp_path / "hub.db") as db:
        return {b: json.loads(r) for b, r in db.execute("SELECT batch_id, receipt FROM hub_batches")}


def test_a_compact_upload_stores_no_signed_receipt_and_an_old_node_asking_later_gets_one_that_verifies(
        env, plain_hub, tmp_path):
    """The hub signs the full receipt only for a /v1 node that asks for it (docs/api.md, "Uploads"),
    and keeps it: asked again, it answers the same document."""
    node = Node(config_mod.load(env=env))
    add_records(node, 3)
    node.close()
    assert _cycle(sync_env({**env, "CLINIC_EDGE_SYNC_HUB_URL": plain_hub.url})).ok
    (batch_id, stored), = _stored_receipts(tmp_path).items()
    assert "sig" not in stored and stored["stored"] == 3

    node = Node(config_mod.load(env=env))
    try:
        ident = state.identity(node)
    finally:
        node.close()
    client = HubClient(plain_hub.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=10)
    hub_pub = signing.public_from_text(ident.hub_pubkey)
    answers = []
    for _ in range(2):       # an old node's offset query after its upload's answer was lost, and its retry
        status, _rh, data, _nonce = _signed(client, "GET", f"/v1/uploads/{batch_id}?total=1")
        assert status == 200
        answers.append(json.loads(data)["receipt"])
    assert answers[0] == answers[1] == _stored_receipts(tmp_path)[batch_id]
    receipt = protocol.verify_document(hub_pub, answers[0])
    assert (receipt["node"], receipt["batch"], receipt["stored"]) == (ident.node, batch_id, 3)
