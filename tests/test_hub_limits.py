"""The hub bounds what it decodes (issue 14 item 4), against a real `hub serve` (waitress):
a tiny signed batch describing millions of cells is refused fast with bounded memory, a 400 MiB
body is refused from its Content-Length before any of it is read or spooled, deep JSON is a 400,
and no malformed body or header gets a 500 (hypothesis, in-process on a real SQLite store)."""
from __future__ import annotations

import json
import secrets
import socket
import ssl
import threading
import time
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sync import protocol, record_codec, signing
from sync.client import state, tls
from sync.client.transport import HubClient
from sync_fixtures import Hub, enroll


@pytest.fixture
def hub(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    (d / "tmp").mkdir()
    h = Hub({**env, "TMPDIR": str(d / "tmp")}, d, f"sqlite:///{tmp_path / 'hub.db'}").start()
    yield h
    h.stop()


def _rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _bomb(ident, records: int, columns: int) -> bytes:
    """A correctly signed envelope whose few kB of zlib describe records x columns cells."""
    group = {"k": "reading", "i": [f"r{i}" for i in range(records)], "v": 1,
             "f": [f"c{j}" for j in range(columns)], "c": [{"t": "id"}] * columns}
    payload = zlib.compress(json.dumps([group]).encode(), 9)
    header = protocol.canonical({"node": ident.node, "batch": uuid.uuid4().hex, "from": 1, "to": records,
                                 "n": records, "v": protocol.VERSION})
    head = protocol.MAGIC + len(header).to_bytes(2, "big") + header
    return head + ident.key.sign(head + payload) + payload


def _put(client: HubClient, body: bytes):
    path = f"/v1/uploads/{uuid.uuid4().hex}?offset=0&total={len(body)}"
    headers = protocol.sign_request(client.key, "PUT", path, client.node, secrets.token_urlsafe(18),
                                    protocol.utc_now_iso(), body)
    return client.raw("PUT", path, body, headers)


def test_a_small_signed_batch_of_millions_of_cells_is_refused_fast_with_bounded_memory(env, node, hub):
    enroll(env, hub)
    ident = state.identity(node)
    client = HubClient(hub.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=120,
                       context=tls.client_context(node.data_dir))
    bomb = _bomb(ident, 5000, 1000)
    assert len(bomb) < 40_000
    _put(client, _bomb(ident, 1, 1))              # warm up the hub (imports, connections) before measuring
    base, peak, done = _rss_kb(hub.proc.pid), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kb(hub.proc.pid))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    started = time.monotonic()
    status, _h, data, _s, _g = _put(client, bomb)
    took = time.monotonic() - started
    done.set()
    assert status == 413 and b"send smaller batches" in data, data
    assert took < 10
    assert peak[0] - base < 60_000, f"the hub grew by {(peak[0] - base) // 1024} MB"
    assert hub.held() == []


def test_a_400_mib_body_is_refused_from_its_length_without_being_read(hub):
    size = 400 << 20
    raw = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
    with hub.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:   # the hub speaks only TLS
        s.sendall(f"PUT /v1/uploads/x?offset=0&total={size} HTTP/1.1\r\nHost: hub\r\n"
                  f"Content-Length: {size}\r\n\r\n".encode())
        sent, block = 0, b"\0" * 65536
        answer = b""
        try:
            while sent < 64 << 20:                  # keep sending: the hub must stop us long before the end
                s.sendall(block)
                sent += len(block)
                s.settimeout(0.001)
                try:
                    got = s.recv(65536)
                    if not got:
                        break
                    answer += got
                except (socket.timeout, BlockingIOError):
                    pass
                s.settimeout(10)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        s.settimeout(5)
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except (socket.timeout, ConnectionResetError, ssl.SSLError):
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 << 20, "the hub kept reading a body it had refused"
    spooled = sum(p.stat().st_size for p in (hub.data / "tmp").rglob("*") if p.is_file())
    assert spooled == 0


def test_deeply_nested_json_is_a_400_with_a_reason(env, node, hub):
    enroll(env, hub)
    ident = state.identity(node)
    client = HubClient(hub.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=10,
                       context=tls.client_context(node.data_dir))
    deep = ("[" * 100000 + "]" * 100000).encode()
    path = "/v1/hello"
    headers = protocol.sign_request(client.key, "POST", path, client.node, secrets.token_urlsafe(18),
                                    protocol.utc_now_iso(), deep)
    status, _h, data, _s, _g = client.raw("POST", path, deep, headers)
    assert status == 400 and b"nested too deeply" in data, data
    # and inside a signed batch: every record nested 5000 levels deep
    group = {"k": "reading", "i": ["a"], "v": 1, "f": ["x"], "c": [{"t": "raw", "x": [json.loads("[" * 900 + "]" * 900)]}]}
    payload = zlib.compress(("[" * 5000 + json.dumps(group) + "]" * 5000).encode())
    header = protocol.canonical({"node": ident.node, "batch": uuid.uuid4().hex, "from": 1, "to": 1, "n": 1,
                                 "v": protocol.VERSION})
    head = protocol.MAGIC + len(header).to_bytes(2, "big") + header
    status, _h, data, _s, _g = _put(client, head + ident.key.sign(head + payload) + payload)
    assert status == 400 and b"cannot be decoded" in data or b"nested" in data, data


# ---- fuzz: the decode path and the routes, in process on a real SQLite hub ---------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                         max_size=4),
                           max_leaves=12)
columns = st.fixed_dictionaries({"t": st.sampled_from(["id", "ts", "dict", "raw", "zz"])},
                                optional={"d": json_values, "s": json_values, "x": json_values, "m": json_values})
groups = st.fixed_dictionaries({"k": json_values, "i": st.lists(st.text(max_size=3), max_size=5),
                                "v": json_values, "f": st.lists(st.text(max_size=3), max_size=4),
                                "c": st.lists(columns, max_size=4)})


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.lists(groups, max_size=3), json_values))
def test_decoding_any_json_document_is_records_or_a_protocol_error(doc):
    try:
        out = record_codec.decode_records(zlib.compress(json.dumps(doc).encode()))
    except protocol.ProtocolError:
        return
    assert isinstance(out, list)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_any_bytes_is_records_or_a_protocol_error(data):
    try:
        record_codec.decode_records(data)
        protocol.open_envelope(data)
    except protocol.ProtocolError:
        pass


@pytest.fixture(scope="module")
def app_hub(tmp_path_factory):
    from sync.hub.app import create_app
    from sync.hub.service import Hub as HubService
    from sync.hub.storage import HubStore

    d = tmp_path_factory.mktemp("fuzzhub")
    store = HubStore(f"sqlite:///{d / 'hub.db'}")
    node_key = signing.new_key()
    store.add_node("fuzz", "FUZZCODE", now=datetime.now(timezone.utc), ttl=timedelta(hours=1))
    store.redeem("FUZZCODE", signing.public_text(node_key), now=datetime.now(timezone.utc))
    hub = HubService(store, signing.new_key(), max_batch_bytes=1 << 16)
    app = create_app(hub, secret_key=b"fuzz")
    return app.test_client(), node_key


ROUTES = [("POST", "/v1/enroll"), ("POST", "/v1/hello"), ("GET", "/v1/uploads/b1?total=5"),
          ("PUT", "/v1/uploads/b1?offset=0&total=5"), ("PUT", "/v1/uploads/../x?offset=-1&total=x"),
          ("GET", "/v2/u/b1?t=5"), ("PUT", "/v2/u/b1?o=0&t=5"), ("PUT", "/v2/u/b1?o=-1&t=x"),
          ("POST", "/v1/pull"), ("GET", "/v1/bundles/abc"), ("POST", "/login"), ("POST", "/nodes"),
          ("GET", "/"), ("POST", "/logout")]
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=st.one_of(st.binary(max_size=200), json_values.map(
    lambda v: json.dumps(v).encode())), sign=st.booleans(), when=header_text, nonce=header_text,
       sig=header_text, node_name=header_text)
def test_no_malformed_request_gets_a_500(app_hub, route, body, sign, when, nonce, node_name, sig):
    client, key = app_hub
    method, path = route
    if sign:     # correctly signed by the enrolled node, with a fuzzed time
        nonce = secrets.token_urlsafe(18)
        headers = protocol.sign_request(key, method, path, "fuzz", nonce, when, body)
    else:
        headers = {protocol.H_NODE: node_name, protocol.H_NONCE: nonce, protocol.H_TIME: when, protocol.H_SIG: sig}
    resp = client.open(path, method=method, data=body, headers=headers)
    assert resp.status_code < 500, (resp.status_code, resp.data[:300])
