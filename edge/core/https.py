"""Serving a WSGI app over HTTPS with cheroot (CherryPy's threaded production WSGI server, which
does TLS itself; waitress does not): the county hub, and the node's web UI with its certificate
(docs/tls.md). Keep-alive connections are kept, so a node pays the TLS handshake once per sync
cycle rather than per request (bench/tls_handshake.py measures it). `redirect_app` is what the
plain HTTP port of the web UI serves: a redirect to the same path over HTTPS."""
from __future__ import annotations

import ssl
import threading
from pathlib import Path
from urllib.parse import quote


# Connections the kernel holds for the server before it accepts them. cheroot's default of 5
# drops a burst (300 nodes syncing when the county link returns, forty browsers at once) at the
# door; the kernel caps this at net.core.somaxconn (docs/api.md, "Connections").
BACKLOG = 1024


class CherootService:
    """What edge.core.watchdog.serve_notified runs: the socket is bound before READY=1."""

    def __init__(self, app, host: str, port: int, *, threads: int, cert: Path | None = None,
                 key: Path | None = None, name: str = "clinic-edge", max_body: int = 0,
                 tickets: int | None = None):
        from cheroot import wsgi

        self.server = wsgi.Server((host, port), app, numthreads=threads, server_name=name, timeout=60,
                                  shutdown_timeout=10, accepted_queue_size=max(100, threads * 4))
        self.server.request_queue_size = BACKLOG
        # a body over max_body is refused with 413 from its Content-Length, before it is read (0: no limit)
        self.server.max_request_body_size = max_body
        if cert is not None:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            adapter = BuiltinSSLAdapter(str(cert), str(key))
            adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
            if tickets is not None:   # TLS 1.3 session tickets per handshake (OpenSSL sends 2, ~255 B each)
                adapter.context.num_tickets = tickets
            self.server.ssl_adapter = adapter
        self.server.prepare()

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    def run(self) -> None:
        try:
            self.server.serve()
        finally:
            self.server.stop()

    def close(self) -> None:
        self.server.stop()

    def run_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="redirect", daemon=True)
        t.start()
        return t


def redirect_app(https_port: int, app=None, passthrough: tuple[str, ...] = ("/healthz",)):
    """A WSGI app that sends every request to https://<the host asked for>:<https_port><path>,
    but the `passthrough` paths, which `app` answers here (the update's health check and
    monitoring read /healthz, which holds no personal data, over loopback HTTP)."""
    def redirect(environ, start_response):
        if app is not None and environ.get("PATH_INFO") in passthrough:
            return app(environ, start_response)
        host = (environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "localhost").rsplit(":", 1)[0]
        if host.count(":") > 1 and not host.startswith("["):   # a bare IPv6 address without port
            host = f"[{host}]"
        path = quote(environ.get("PATH_INFO", "/")) + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING")
                                                       else "")
        port = "" if https_port == 443 else f":{https_port}"
        start_response("308 Permanent Redirect", [("Location", f"https://{host}{port}{path}"),
                                                  ("Content-Type", "text/plain; charset=utf-8")])
        return ["请使用 HTTPS / use HTTPS\n".encode()]
    return redirect
