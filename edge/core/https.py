"""Serving a WSGI app over HTTPS with cheroot (CherryPy's threaded production WSGI server, which
does TLS itself; waitress does not): the county hub, and the node's web UI with its certificate
(docs/tls.md). Keep-alive connections are kept, so a node pays the TLS handshake once per sync
cycle rather than per request (bench/tls_handshake.py measures it). `redirect_app` is what the
plain HTTP port of the web UI serves: a redirect to the same path over HTTPS."""
from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
from pathlib import Path
from urllib.parse import quote


# Connections the kernel holds for the server before it accepts them. cheroot's default of 5
# drops a burst (300 nodes syncing when the county link returns, forty browsers at once) at the
# door; the kernel caps this at net.core.somaxconn (docs/api.md, "Connections").
BACKLOG = 1024
PLAIN_HTTP_ANSWER = ("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                     "这个端口只接受 HTTPS，请用 https:// 打开 / this port speaks HTTPS only: use https://\n".encode())


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
            later, in_worker = tls_classes()
            adapter = later(str(cert), str(key))
            adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
            if tickets is not None:   # TLS 1.3 session tickets per handshake (OpenSSL sends 2, ~255 B each)
                adapter.context.num_tickets = tickets
            self.server.ssl_adapter = adapter
            self.server.ConnectionClass = in_worker
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


@functools.cache
def tls_classes():
    """(HandshakeLater, HandshakeInWorker), made when first used (cheroot loads only then)."""
    from cheroot.server import HTTPConnection
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    class HandshakeLater(BuiltinSSLAdapter):
        """cheroot's adapter does the TLS handshake in its one accept-and-select thread, so every
        handshake waits for the one before it and, while a client is slow to answer (a SIM card's
        round trip, a link that drops mid-handshake, up to the 60 s timeout), no other connection is
        accepted or served: 300 nodes at once queue behind each other's handshakes. Here the socket
        is only wrapped, and HandshakeInWorker shakes hands in the worker thread that reads the
        first request (docs/api.md, "Connections")."""

        def wrap(self, sock):
            return (self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False),
                    {"wsgi.url_scheme": "https", "HTTPS": "on"})

    class HandshakeInWorker(HTTPConnection):
        handshaken = False

        def communicate(self):
            if not self.handshaken:
                try:
                    self.socket.do_handshake()
                except ssl.SSLError as e:       # plain HTTP on the HTTPS port: say so, then close
                    if "http request" in str(e).lower():
                        with contextlib.suppress(OSError):
                            socket.socket.sendall(self.socket, PLAIN_HTTP_ANSWER)
                    return False
                except OSError:                 # the peer left or timed out during the handshake
                    return False
                self.handshaken = True
                self.ssl_env = self.server.ssl_adapter.get_environ(self.socket)
            return super().communicate()

    return HandshakeLater, HandshakeInWorker


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
