"""The web UI over HTTPS on the LAN (issue 13, item 3c): `clinic-edge serve` as a real process
with the node certificate from the county CA; a browser that trusts the county root connects, one
without it is refused; the HTTP port only redirects; the session cookie is Secure over HTTPS."""
from __future__ import annotations

import http.client
import signal
import ssl
import subprocess
import sys
import urllib.request

import pytest

from conftest import free_port, wait_port
from sync.hub import ca as ca_mod
from tls_fixtures import give_node_certificate


@pytest.fixture
def web(env, node, tmp_path):
    county = give_node_certificate(node.data_dir, tmp_path / "county-hub")
    port, redirect = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--listen", f"127.0.0.1:{port}",
                             "--redirect-listen", f"127.0.0.1:{redirect}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "web.log", "wb"))
    wait_port(port, 30)
    wait_port(redirect, 30)
    yield port, redirect, county, tmp_path
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def test_the_web_ui_is_https_with_the_node_certificate_and_refuses_clients_without_the_county_root(web):
    port, _, county, tmp_path = web
    trusted = ssl.create_default_context(cafile=str(county.dir / "county-ca.pem"))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=trusted, timeout=10) as r:
        assert r.status == 200
    with pytest.raises(urllib.error.URLError) as e:
        urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10)   # system roots only
    assert isinstance(e.value.reason, ssl.SSLCertVerificationError)
    other = ca_mod.load_or_create(tmp_path / "other-county")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10,
                               context=ssl.create_default_context(cafile=str(other.dir / "county-ca.pem")))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)   # plain HTTP on the HTTPS port: no page
    try:
        c.request("GET", "/healthz")
        status = c.getresponse().status
    except (http.client.HTTPException, ConnectionError):
        status = None
    assert status != 200


def test_the_http_port_only_redirects_and_the_session_cookie_is_secure(web):
    port, redirect, county, _ = web
    c = http.client.HTTPConnection("127.0.0.1", redirect, timeout=10)
    c.request("GET", "/login?next=%2Fresidents")
    r = c.getresponse()
    assert r.status == 308 and r.getheader("Location") == f"https://127.0.0.1:{port}/login?next=%2Fresidents"
    trusted = ssl.create_default_context(cafile=str(county.dir / "county-ca.pem"))
    s = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=trusted)
    s.request("GET", "/login")
    r = s.getresponse()
    r.read()
    cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
    assert cookies and all("Secure" in v for v in cookies), cookies


def test_before_enrollment_both_ports_serve_the_ui_so_setup_is_reachable(env, node, tmp_path):
    port, redirect = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--listen", f"127.0.0.1:{port}",
                             "--redirect-listen", f"127.0.0.1:{redirect}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, 30)
        wait_port(redirect, 30)
        for p in (port, redirect):
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/setup", timeout=10) as r:
                assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert "no node certificate" in err and "serving plain HTTP until enrollment" in err
