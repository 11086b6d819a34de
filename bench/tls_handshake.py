"""What TLS costs the sync: milliseconds per new HTTPS connection to the hub, against a request on
a kept-alive connection (what sync.client.transport does within a cycle) and plain HTTP.

The real hub app (SQLite store in a temp dir) is served by cheroot with a server certificate from
a county CA made by sync.hub.ca; the client verifies it against that root as a node does
(sync.client.tls.client_context). Each figure is the median of N requests to GET /healthz.

usage: .venv/bin/python bench/tls_handshake.py [-n 200]
"""
from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from sync import signing  # noqa: E402
from sync.hub import ca as ca_mod  # noqa: E402
from sync.hub.app import create_app  # noqa: E402
from sync.hub.service import Hub  # noqa: E402
from edge.core.https import CherootService  # noqa: E402
from sync.hub.storage import HubStore  # noqa: E402


def serve(tmp: Path, tls: bool) -> tuple[CherootService, Path]:
    county = ca_mod.load_or_create(tmp / "hub")
    cert, key = county.server_files(["127.0.0.1"], now=datetime.now(timezone.utc))
    hub = Hub(HubStore(f"sqlite:///{tmp / 'hub.db'}", pool_size=4), signing.new_key())
    svc = CherootService(create_app(hub, ca=county), "127.0.0.1", 0, threads=4,
                         cert=cert if tls else None, key=key if tls else None)
    threading.Thread(target=svc.run, daemon=True).start()
    return svc, county.dir / "county-ca.pem"


def timed(fn, n: int) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    n = ap.parse_args().n
    with tempfile.TemporaryDirectory() as d:
        tls_svc, ca_file = serve(Path(d) / "tls", True)
        plain_svc, _ = serve(Path(d) / "plain", False)
        ctx = ssl.create_default_context(cafile=str(ca_file))

        def handshake_only():
            with socket.create_connection(("127.0.0.1", tls_svc.port), 10) as s:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1"):
                    pass

        def new_https():
            c = http.client.HTTPSConnection("127.0.0.1", tls_svc.port, timeout=10, context=ctx)
            c.request("GET", "/healthz")
            c.getresponse().read()
            c.close()

        def new_http():
            c = http.client.HTTPConnection("127.0.0.1", plain_svc.port, timeout=10)
            c.request("GET", "/healthz")
            c.getresponse().read()
            c.close()

        kept = http.client.HTTPSConnection("127.0.0.1", tls_svc.port, timeout=10, context=ctx)

        def reused_https():
            kept.request("GET", "/healthz")
            kept.getresponse().read()

        for f in (new_https, new_http, reused_https):   # warm up
            f()
        hs, nh, np_, ru = timed(handshake_only, n), timed(new_https, n), timed(new_http, n), timed(reused_https, n)
        print(f"TLS (ECDSA P-256 county CA, {ssl.OPENSSL_VERSION}), median of {n}, loopback:")
        print(f"  TCP connect + TLS handshake (verified): {hs:7.2f} ms per new connection")
        print(f"  new HTTPS connection + GET /healthz:    {nh:7.2f} ms")
        print(f"  new plain HTTP connection + GET:        {np_:7.2f} ms")
        print(f"  GET on a kept-alive HTTPS connection:   {ru:7.2f} ms")
        print(f"  => reusing the connection saves {nh - ru:.2f} ms per request")
        kept.close()
        tls_svc.close()
        plain_svc.close()


if __name__ == "__main__":
    main()
