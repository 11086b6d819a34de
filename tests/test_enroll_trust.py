"""Enrollment knows who it talks to (issue 13, items 2 and 3a): the node believes only the hub
whose key fingerprint county IT gave, over https:// (http:// only on loopback), and comes back
with its certificate from the county CA. Real `clinic-edge hub serve` processes over TLS."""
from __future__ import annotations

import json
import os
import socket
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from conftest import clinic_edge
from sync_fixtures import Hub, sync_env


@pytest.fixture
def two_hubs(tmp_path, env):
    hubs = []
    for name in ("county", "impostor"):
        d = tmp_path / name
        d.mkdir()
        hubs.append(Hub(env, d, f"sqlite:///{d / 'hub.db'}").start())
    yield hubs
    for h in hubs:
        h.stop()


def _enroll(env, url, code, *fingerprint):
    args = ["--hub-key", fingerprint[0]] if fingerprint else []
    return clinic_edge(env, "enroll", "--hub", url, "--code", code, *args, check=False)


def _not_enrolled(env, data_dir):
    status = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    return status["node"] is None and not (data_dir / "secrets" / "sync-node.key").exists() \
        and not (data_dir / "tls" / "node-cert.pem").exists()


def _mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_node_add_prints_the_hub_key_fingerprint_and_enrollment_with_it_brings_the_node_certificate(
        env, data_dir, two_hubs):
    county, _ = two_hubs
    out = county.cli("node", "add", "clinic-a").stdout
    code = out.strip().splitlines()[-1]
    assert f"hub key fingerprint: {county.fingerprint}" in out and f"--hub-key {county.fingerprint}" in out
    r = _enroll(env, county.url, code, county.fingerprint.upper())     # as typed, any case
    assert r.returncode == 0, r.stderr
    assert "node certificate from the county CA" in r.stdout
    tls = data_dir / "tls"
    assert _mode(tls) == 0o700 and _mode(tls / "node-key.pem") == 0o600
    ca = x509.load_pem_x509_certificate((tls / "county-ca.pem").read_bytes())
    assert (tls / "county-ca.pem").read_bytes() == county.ca_file.read_bytes()
    cert = x509.load_pem_x509_certificate((tls / "node-cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=clinic-a"
    # the node then syncs over TLS, verifying the hub against the pinned county root
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    # and `doctor` reaches the hub the same way (it once checked it without the county root)
    findings = json.loads(clinic_edge(env, "doctor", "--json", check=False).stdout)
    assert next(f for f in findings if f["check"] == "hub")["level"] == "ok"


def test_a_hub_with_another_key_is_refused_and_nothing_is_enrolled(env, data_dir, two_hubs):
    """County IT gave the county hub's fingerprint; the URL leads to another (real) hub."""
    county, impostor = two_hubs
    county.add_node("clinic-a")
    code = impostor.add_node("clinic-a")          # the impostor would accept any code
    r = _enroll(env, impostor.url, code, county.fingerprint)
    assert r.returncode == 2
    assert "enrollment refused" in r.stderr and county.fingerprint in r.stderr
    assert _not_enrolled(env, data_dir)


def test_a_wrong_or_malformed_fingerprint_is_refused(env, data_dir, two_hubs):
    county, _ = two_hubs
    r = _enroll(env, county.url, county.add_node("clinic-a"), "ab" * 32)
    assert r.returncode == 2 and "not the key" in r.stderr
    r = _enroll(env, county.url, county.add_node("clinic-b"), "12:34")
    assert r.returncode == 2 and "not a hub key fingerprint" in r.stderr
    assert _not_enrolled(env, data_dir)


def test_plain_http_to_another_host_and_https_without_fingerprint_are_refused(env, data_dir):
    r = _enroll(env, "http://10.20.30.40:8470", "ABCD-EFGH-JKLM", "ab" * 32)
    assert r.returncode == 2 and "plain http://" in r.stderr and "https://" in r.stderr
    r = _enroll(env, "https://10.20.30.40:8470", "ABCD-EFGH-JKLM")
    assert r.returncode == 2 and "fingerprint is required" in r.stderr
    assert _not_enrolled(env, data_dir)


def test_a_tls_client_without_the_county_root_is_refused_by_the_hub_handshake(two_hubs):
    county, impostor = two_hubs
    with pytest.raises(ssl.SSLCertVerificationError):          # the system roots do not know the county
        with socket.create_connection(("127.0.0.1", county.port), 5) as s:
            ssl.create_default_context().wrap_socket(s, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):          # another county's root does not either
        with socket.create_connection(("127.0.0.1", county.port), 5) as s:
            impostor.ssl_context().wrap_socket(s, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", county.port), 5) as s:
        with county.ssl_context().wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")
    assert json.loads(county.urlopen("/healthz").read())["ok"]


def test_an_enrolled_node_refuses_a_hub_whose_certificate_is_not_from_its_county(env, data_dir, two_hubs):
    county, impostor = two_hubs
    assert _enroll(env, county.url, county.add_node("clinic-a"), county.fingerprint).returncode == 0
    r = clinic_edge(sync_env(env, hub_url=impostor.url), "sync", "--once", check=False)
    assert r.returncode == 1 and "not from the county CA" in r.stderr


def test_the_county_ca_key_is_private_and_exported_root_matches(tmp_path, env):
    hub_env = {**env, "CLINIC_EDGE_DATA": str(tmp_path / "h")}
    out = clinic_edge(hub_env, "hub", "ca", "init").stdout
    key = tmp_path / "h" / "hub" / "ca" / "county-ca-key.pem"
    assert _mode(key) == 0o600 and _mode(key.parent) == 0o700
    clinic_edge(hub_env, "hub", "ca", "export", str(tmp_path / "county-ca.crt"))
    root = x509.load_pem_x509_certificate((tmp_path / "county-ca.crt").read_bytes())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.fingerprint(hashes.SHA256()).hex() in out
    assert os.path.getsize(tmp_path / "county-ca.crt") > 300


def test_a_sync_cycle_reuses_one_tls_connection_for_all_its_requests(env, data_dir, node, two_hubs):
    from sync.client import state, tls
    from sync.client.controller import Cycle
    from sync.client.transport import HubClient
    from sync_fixtures import add_records, enroll

    county, _ = two_hubs
    enroll(env, county)
    add_records(node, 40)

    class Counting(HubClient):
        opened = requests = 0

        def _connection(self):
            self.opened += 1
            return super()._connection()

        def raw(self, *a, **kw):
            self.requests += 1
            return super().raw(*a, **kw)

    ident = state.identity(node)
    client = Counting(ident.hub_url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=10,
                      context=tls.client_context(node.data_dir))
    node.config["sync"]["batch_records"] = 10
    result = Cycle(node, ident, client=client).run()
    assert result.ok, result.error
    assert client.requests >= 4 and client.opened == 1     # hello and the batches; the receipts fold the pull


def test_a_certificate_about_to_expire_is_renewed_through_the_signed_hello(env, data_dir, node, two_hubs):
    from datetime import datetime, timedelta, timezone

    from sync import pki
    from sync.hub import ca as ca_mod

    county, _ = two_hubs
    assert _enroll(env, county.url, county.add_node("clinic-a"), county.fingerprint).returncode == 0
    cert_file = data_dir / "tls" / "node-cert.pem"
    key = pki.load_key(data_dir / "tls" / "node-key.pem")
    hub_ca = ca_mod.load(county.data / "hub")
    soon = datetime.now(timezone.utc) - timedelta(days=380)    # issued long ago: 17 days left
    old = pki.leaf_certificate(hub_ca.cert, hub_ca.key, key.public_key(), "clinic-a", ["clinic-a"], days=397,
                               now=soon)
    cert_file.write_bytes(pki.cert_pem(old))
    doctor = json.loads(clinic_edge(env, "doctor", "--json", check=False).stdout)
    cert_finding = next(f for f in doctor if f["check"] == "certificates" and "node-cert.pem" in f["detail"])
    assert cert_finding["level"] == "warning" and "days left" in cert_finding["detail"]
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    new = pki.load_cert(cert_file.read_bytes())
    assert pki.days_left(new) > 300 and new.serial_number != old.serial_number
    assert new.public_key().public_numbers() == key.public_key().public_numbers()
    assert pki.issued_by(new, hub_ca.cert)
    doctor = json.loads(clinic_edge(env, "doctor", "--json", check=False).stdout)
    assert [f["level"] for f in doctor if f["check"] == "certificates"] == ["ok", "ok"]


class _Relay:
    """A loopback HTTP server holding the county hub's real key, answering enrollments the way a
    man in the middle could: with an old signed answer (replay), or relaying the node's nonce to
    the hub with its own node key swapped in (the hub then signs an answer naming that key)."""

    def __init__(self, hub_key, mode: str):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from sync import protocol, signing

        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                nonce = "an-old-nonce-from-yesterday" if mode == "replay" else req["nonce"]
                pubkey = req["pubkey"] if mode == "replay" else signing.public_text(signing.new_key())
                body = json.dumps({"node": "clinic-a", "hub_pubkey": signing.public_text(hub_key),
                                   "pubkey": pubkey, "nonce": nonce, "hub_time": "2026-01-01T00:00:00.000Z"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header(protocol.H_SIG, signing.b64(hub_key.sign(protocol.response_bytes(nonce, body))))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        relay.mode = mode


@pytest.mark.parametrize("mode, complaint", [("replay", "did not prove its key"),
                                             ("swap", "registered another key")])
def test_a_replayed_or_relayed_answer_signed_by_the_right_hub_key_is_refused(env, data_dir, mode, complaint):
    from sync import signing

    hub_key = signing.new_key()
    relay = _Relay(hub_key, mode)
    try:
        r = _enroll(env, relay.url, "ABCD-EFGH-JKLM", signing.fingerprint(hub_key))
    finally:
        relay.server.shutdown()
    assert r.returncode == 2 and complaint in r.stderr, r.stderr
    assert _not_enrolled(env, data_dir)
