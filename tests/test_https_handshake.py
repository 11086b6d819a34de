"""A client that opens a connection and never finishes its TLS handshake (a clinic's SIM link that
drops mid-handshake, a port scanner) holds up only itself. cheroot shook hands in its one
accept-and-select thread, so until that client timed out (60 s) no other connection was accepted
or served; edge.core.https shakes hands in the worker thread instead (docs/api.md, "Connections")."""
from __future__ import annotations

import http.client
import socket
import ssl
from datetime import datetime, timezone

import pytest

from edge.core import https


@pytest.fixture
def tls_service(tmp_path):
    from sync.hub import ca as ca_mod

    county = ca_mod.load_or_create(tmp_path / "hub")
    cert, key = county.server_files(["127.0.0.1"], now=datetime.now(timezone.utc))

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.url_scheme"].encode()]

    service = https.CherootService(app, "127.0.0.1", 0, threads=4, cert=cert, key=key)
    service.run_in_thread()
    yield service, ssl.create_default_context(cafile=str(county.dir / "county-ca.pem"))
    service.close()


def test_a_client_stalled_in_its_handshake_does_not_hold_up_the_next_one(tls_service):
    service, trusted = tls_service
    stalled = socket.create_connection(("127.0.0.1", service.port))   # connects, never sends a ClientHello
    try:
        c = http.client.HTTPSConnection("127.0.0.1", service.port, timeout=15, context=trusted)
        c.request("GET", "/")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"https")
        c.request("GET", "/again")                     # the same kept-alive connection, no second handshake
        assert c.getresponse().read() == b"https"
        c.close()
    finally:
        stalled.close()


def test_plain_http_on_the_https_port_is_told_to_use_https(tls_service):
    service, _ = tls_service
    c = http.client.HTTPConnection("127.0.0.1", service.port, timeout=15)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 400 and b"https://" in r.read()
