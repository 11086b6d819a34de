"""The node's web app behind the real server `clinic-edge serve` runs (cheroot) on loopback, and a small HTTP client that
keeps cookies and can send from any loopback address (127.0.0.0/8) to play another computer."""
from __future__ import annotations

import http.client
import re
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from edge.core.https import CherootService
from edge.web import create_app
from edge.web.limits import SERVER_BODY_LIMIT, behind_proxy


class SettableClock:
    """The node's clock, moved on by the test (for the absolute session lifetime and the throttle)."""

    def __init__(self, inner):
        self.inner, self.offset = inner, timedelta(0)

    def now(self):
        return self.inner.now() + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def __getattr__(self, name):
        return getattr(self.inner, name)


class LiveServer:
    def __init__(self, node, threads: int = 8):
        self.app = create_app(node=node)
        self.server = CherootService(behind_proxy(self.app, node.config), "127.0.0.1", 0, threads=threads,
                                     max_body=SERVER_BODY_LIMIT)
        self.port = self.server.port

    def __enter__(self) -> "LiveServer":
        self.thread = self.server.run_in_thread()
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()
        self.thread.join(30)

    def client(self, source: str = "127.0.0.1") -> "Client":
        return Client(self.port, source)


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status, self.headers, self.body = status, headers, body
        self.text = body.decode("utf-8", "replace")

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


class Client:
    """One browser: its cookies, its address. Never follows redirects."""

    def __init__(self, port: int, source: str = "127.0.0.1"):
        self.port, self.source, self.cookies = port, source, {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(self.source, 0))
        try:
            h = dict(headers or {})
            if self.cookies:
                h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            resp = Response(r.status, r.headers, r.read())
        finally:
            conn.close()
        for header in resp.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["expires"] != "Thu, 01 Jan 1970 00:00:00 GMT":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return resp

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, form: dict) -> Response:
        return self.request("POST", path, urlencode(form).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def token(self, path: str = "/login") -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', self.get(path).text).group(1)

    def log_in(self, user: str, password: str, next_: str | None = None) -> Response:
        path = "/login" + (f"?{urlencode({'next': next_})}" if next_ is not None else "")
        return self.post(path, {"username": user, "password": password, "csrf_token": self.token()})

    def copy(self, source: str | None = None) -> "Client":
        """Another browser holding a copy of this one's cookies (a stolen cookie)."""
        other = Client(self.port, source or self.source)
        other.cookies = dict(self.cookies)
        return other
