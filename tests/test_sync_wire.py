"""What a sync cycle costs on a SIM card (issue 17.4): the daemon's cycle with nothing new is one
small exchange; news still reaches the county; receipts fold the pull; the hub still takes the
signature headers older nodes send. Bytes are counted at a TCP relay between node and a real
hub process (plain HTTP on loopback, as bench/sync.py measures; TLS adds its own records)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from edge.core import config as config_mod
from edge.core.node import Node
from sync.client import state
from sync.client.controller import Cycle
from sync_fixtures import CountingProxy, Hub, add_records, enroll


@pytest.fixture
def link(env, tmp_path):
    d = tmp_path / "hubdata"
    d.mkdir()
    hub = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}", tls=False).start()
    enroll(env, hub)
    proxy = CountingProxy(hub.port).start()
    env = {**env, "CLINIC_EDGE_SYNC_HUB_URL": proxy.url}
    yield hub, proxy, env
    proxy.stop()
    hub.stop()


def daemon_cycle(env):
    """One cycle as the sync daemon runs it (hello only when there is news)."""
    node = Node(config_mod.load(env=env))
    try:
        result = Cycle(node, state.identity(node), always_hello=False).run()
        assert result.ok, result.error
        return result
    finally:
        node.close()


def hub_status(hub) -> dict:
    row = hub.store().node("clinic-a")
    return json.loads(row["status"] or "{}")


def test_a_cycle_with_nothing_new_is_one_pull_of_at_most_500_bytes(link):
    hub, proxy, env = link
    node = Node(config_mod.load(env=env))
    add_records(node, 6)
    node.close()
    daemon_cycle(env)                      # the first: hello, the backlog, the hello saying it is gone
    proxy.reset()
    daemon_cycle(env)
    assert proxy.requests == ["POST /v1/pull"]
    assert proxy.bytes <= 500, proxy.bytes


def test_news_still_reaches_the_county_and_an_hour_brings_a_hello(link):
    hub, proxy, env = link
    daemon_cycle(env)
    node = Node(config_mod.load(env=env))
    node.write_status("update", {"result": "rolled back", "from": "0.1.0", "to": "0.2.0",
                                 "at": "2026-12-03T08:00:00.000Z", "reason": {"check": "/healthz"}})
    node.close()
    proxy.reset()
    daemon_cycle(env)                      # the county's dashboard must show the rollback now
    assert "POST /v1/hello" in proxy.requests
    assert hub_status(hub)["health"]["last_update"]["result"] == "rolled back"

    proxy.reset()
    daemon_cycle(env)
    assert "POST /v1/hello" not in proxy.requests              # nothing new since
    node = Node(config_mod.load(env=env))
    hour_ago = datetime.now(timezone.utc) - timedelta(minutes=61)
    state.put_many(node.store, {"hello_at": hour_ago.isoformat()}, datetime.now(timezone.utc))
    node.close()
    proxy.reset()
    daemon_cycle(env)
    assert proxy.requests[0] == "POST /v1/hello"               # an hour on: the audit head and the rest


def test_a_receipt_folds_the_pull_unless_the_hub_holds_something_for_the_node(link):
    hub, proxy, env = link
    daemon_cycle(env)
    node = Node(config_mod.load(env=env))
    add_records(node, 1, start=100)        # one new reading
    node.close()
    proxy.reset()
    daemon_cycle(env)
    assert "POST /v1/pull" not in proxy.requests and proxy.requests[0].startswith("PUT /v2/u/")

    hub.store().put_downlink("clinic-a", "code_table", "icd10-I10", 1, json.dumps({"code": "I10", "name": "原发性高血压"}),
                             now=datetime.now(timezone.utc))
    node = Node(config_mod.load(env=env))
    add_records(node, 1, start=102)
    node.close()
    proxy.reset()
    assert daemon_cycle(env).downlink == 1                    # the receipt said: something waits
    assert "POST /v1/pull" in proxy.requests


def test_the_hub_still_takes_the_four_signature_headers_of_older_nodes(link):
    from sync import protocol
    from sync.client.transport import HubClient

    hub, proxy, env = link
    node = Node(config_mod.load(env=env))
    ident = state.identity(node)
    node.close()
    client = HubClient(proxy.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=10)
    body = b'{"cursor":0}'
    sent_at = protocol.utc_now_iso(datetime.now(timezone.utc))
    compact = protocol.sign_request(ident.key, "POST", "/v1/pull", ident.node, "n" * 22, sent_at, body)
    old = dict(zip((protocol.H_NODE, protocol.H_NONCE, protocol.H_TIME, protocol.H_SIG),
                   compact[protocol.H_AUTH].split(" ")))
    status, _, data, _, _ = client.raw("POST", "/v1/pull", body, old)
    assert status == 200, data
    assert json.loads(data)["cursor"] == 0


@pytest.fixture
def tls_link(env, tmp_path):
    d = tmp_path / "hubdata"
    d.mkdir()
    hub = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}", tls=True).start()
    enroll(env, hub)
    proxy = CountingProxy(hub.port).start()
    env = {**env, "CLINIC_EDGE_SYNC_HUB_URL": f"https://127.0.0.1:{proxy.port}"}
    yield hub, proxy, env
    proxy.stop()
    hub.stop()


def test_a_cycle_after_the_first_resumes_the_tls_session_without_the_hub_certificate(tls_link):
    """The daemon's cycles run in one process: the second offers the first's session ticket and
    the hub resumes it, so its certificate does not cross the link again (docs/tls.md)."""
    import ssl

    from sync.client import tls

    hub, proxy, env = tls_link
    cert_bytes = len(ssl.PEM_cert_to_DER_cert(hub.ca_file.read_text()))
    tls.SESSIONS.forget("127.0.0.1", proxy.port)
    daemon_cycle(env)                           # a full handshake; the hub's ticket is kept
    proxy.reset()
    daemon_cycle(env)                           # nothing new, resumed
    resumed = proxy.bytes
    tls.SESSIONS.forget("127.0.0.1", proxy.port)
    proxy.reset()
    daemon_cycle(env)                           # nothing new, a full handshake again
    full = proxy.bytes
    # the full handshake carries the hub's certificate (at least as large as the county root's) and
    # a signature over the handshake; the resumed one carries neither
    print(f"empty daemon cycle over TLS: full handshake {full} B, resumed {resumed} B")
    assert full - resumed >= cert_bytes, (full, resumed, cert_bytes)


ONE_READING = {"kind": "reading", "id": "r-019ae4b3c2f1a0c9d8e7f6a5b4c3", "version": 1,
               "payload": {"id": "r-019ae4b3c2f1a0c9d8e7f6a5b4c3", "device_id": "bp-1", "code": "8480-6",
                           "value": 128.0, "unit": "mm[Hg]", "device_time": "2026-12-03T08:00:00.000Z",
                           "receive_time": "2026-12-03T08:00:02.125Z", "effective_time": "2026-12-03T08:00:00.000Z",
                           "boot_id": "5b7c1e0a-93d4-4a1e-9f61-0c2d7e8b4a11", "monotonic": 1537.8176965914754,
                           "clock_status": "ok", "transport": "mqtt", "status": "valid", "reason": None,
                           "resident_id": None}}


def _old_form(records):
    """Records as nodes before the preset dictionary encoded them: plain zlib."""
    import zlib

    from sync import record_codec

    doc = [record_codec._encode_group("reading", records)]
    return zlib.compress(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(), 9)


def test_one_reading_is_encoded_in_at_most_170_bytes_and_round_trips():
    from sync import record_codec

    encoded = record_codec.encode_records([ONE_READING])
    assert record_codec.decode_records(encoded) == [ONE_READING]
    assert len(encoded) <= 170, len(encoded)      # plain zlib needed about 300 (the old form)
    assert len(_old_form([ONE_READING])) > 250


def test_records_from_nodes_before_the_dictionary_still_decode():
    from sync import record_codec

    second = {**ONE_READING, "id": "r-2", "payload": {**ONE_READING["payload"], "id": "r-2", "value": 131.0}}
    assert record_codec.decode_records(_old_form([ONE_READING, second])) == [ONE_READING, second]


def test_records_naming_an_unknown_dictionary_are_refused_with_the_reason():
    import zlib

    from sync import protocol, record_codec

    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, b'{"some other dictionary":1}')
    payload = z.compress(b'[]') + z.flush()
    with pytest.raises(protocol.ProtocolError, match="zlib dictionary this hub does not know"):
        record_codec.decode_records(payload)


class CutAnswerProxy:
    """A keep-alive relay that forwards the `cut`-th request to the hub and then closes the node's
    connection without the answer: the hub got it, the node never hears back (a link cut)."""

    def __init__(self, upstream: int, cut: int):
        self.upstream, self.cut, self.seen = upstream, cut, 0

    def start(self) -> "CutAnswerProxy":
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client) -> None:
        import socket

        from sync_fixtures import _one_exchange, _read_all, _read_http

        with client:
            while (request := _read_http(client)) is not None:
                self.seen += 1
                with socket.create_connection(("127.0.0.1", self.upstream), 10) as up:
                    up.sendall(_one_exchange(request))
                    answer = _read_all(up)
                if self.seen == self.cut:
                    return
                head, _, body = answer.partition(b"\r\n\r\n")   # keep the node's connection open
                head = b"\r\n".join(h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:"))
                client.sendall(head + b"\r\n\r\n" + body)

    def stop(self) -> None:
        self.sock.close()


def test_an_upload_whose_answer_the_link_cut_on_a_kept_alive_connection_is_signed_afresh(env, tmp_path):
    """The hub stored the batch but its answer was lost: the node asks again with a new nonce
    (the same signed request again would be refused as a replay), gets the receipt, and the
    county holds each record once."""
    d = tmp_path / "hubdata"
    d.mkdir()
    hub = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}", tls=False).start()
    try:
        enroll(env, hub)
        proxy = CutAnswerProxy(hub.port, cut=2).start()     # 1: hello, 2: the batch upload
        env = {**env, "CLINIC_EDGE_SYNC_HUB_URL": proxy.url, "CLINIC_EDGE_SYNC_ATTEMPTS": "1"}
        node = Node(config_mod.load(env=env))
        add_records(node, 6)
        node.close()
        result = daemon_cycle(env)
        assert result.acked == 6
        held = hub.held()
        assert len(held) == len(set(held)) == 6
        proxy.stop()
    finally:
        hub.stop()


def test_batch_ids_are_22_characters_the_hub_takes():
    import re

    from sync.client.batcher import new_batch_id
    from sync.hub.node_api import BATCH_ID

    ids = {new_batch_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and BATCH_ID.fullmatch(i) and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)


def _reading(ms_hex: str, device_time: str, n: int) -> dict:
    rid = f"r-{ms_hex}{n:020x}"
    return {**ONE_READING, "id": rid, "payload": {**ONE_READING["payload"], "id": rid, "device_time": device_time}}


def test_time_ordered_reading_ids_travel_as_their_digests_and_come_back_whole():
    import zlib

    from sync import record_codec

    at = "2026-12-03T08:00:00.000Z"
    ms = f"{record_codec._to_ms(at):012x}"
    late = f"{record_codec._to_ms(at) - 1:012x}"          # an id whose time is 1 ms off device_time
    records = [_reading(ms, at, 1), _reading(late, at, 2), _reading(ms, at, 3)]
    encoded = record_codec.encode_records(records)
    doc = json.loads(zlib.decompressobj(zdict=record_codec.RECORDS_DICT).decompress(encoded))
    assert "i" not in doc[0] and doc[0]["j"] == [f"{n:020x}" for n in (1, 2, 3)] and doc[0]["jd"] == [0, -1, 0]
    assert record_codec.decode_records(encoded) == records
    # ids of another form (no device time, or not time-ordered) keep the full list
    other = [{**ONE_READING, "id": "r-" + "a" * 32, "payload": {**ONE_READING["payload"], "device_time": None}}]
    assert json.loads(zlib.decompressobj(zdict=record_codec.RECORDS_DICT).decompress(
        record_codec.encode_records(other)))[0]["i"] == ["r-" + "a" * 32]
    assert record_codec.decode_records(record_codec.encode_records(other)) == other


def test_full_reading_ids_from_older_nodes_still_decode():
    from sync import record_codec

    at = "2026-12-03T08:00:00.000Z"
    records = [_reading(f"{record_codec._to_ms(at):012x}", at, 7)]
    assert record_codec.decode_records(_old_form(records)) == records


def test_compact_ids_with_a_broken_digest_are_refused():
    import zlib

    from sync import protocol, record_codec

    group = record_codec._encode_group("reading", [_reading(f"{record_codec._to_ms('2026-12-03T08:00:00.000Z'):012x}",
                                                        "2026-12-03T08:00:00.000Z", 7)])
    group["j"] = ["not hex"]
    with pytest.raises(protocol.ProtocolError, match="compact id is malformed"):
        record_codec.decode_records(zlib.compress(json.dumps([group]).encode()))
