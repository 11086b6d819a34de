"""Serving the hub over HTTPS with cheroot (CherryPy's threaded production WSGI server, which does
TLS itself; waitress does not). Keep-alive connections are kept, so a node pays the TLS handshake
once per sync cycle rather than per request (bench/tls_handshake.py measures it)."""
from __future__ import annotations

from pathlib import Path


class CherootService:
    """What edge.core.watchdog.serve_notified runs: the socket is bound before READY=1."""

    def __init__(self, app, host: str, port: int, *, threads: int, cert: Path | None = None,
                 key: Path | None = None, name: str = "clinic-edge-hub"):
        from cheroot import wsgi

        self.server = wsgi.Server((host, port), app, numthreads=threads, server_name=name, timeout=60,
                                  shutdown_timeout=10, accepted_queue_size=max(100, threads * 4))
        if cert is not None:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            self.server.ssl_adapter = BuiltinSSLAdapter(str(cert), str(key))
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
