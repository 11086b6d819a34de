"""Signed HTTP requests to the hub, and verification of its signed answers.

Plain `http.client` with a timeout on every socket operation; one connection per request, so a
connection the link broke never poisons the next one. Bytes sent and received are counted (request
line, headers and body) so the byte budget meters what the SIM card is charged for.
"""
from __future__ import annotations

import http.client
import json
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlparse

from sync import protocol

from .errors import HubRefused, LinkError


@dataclass
class Answer:
    status: int
    doc: dict[str, Any]
    sent_bytes: int
    received_bytes: int
    wall_before: float          # node wall clock (epoch s) and monotonic around the exchange
    wall_after: float
    mono_before: float
    mono_after: float


class HubClient:
    def __init__(self, url: str, *, node: str, key, hub_pubkey: str | None, timeout: float = 30,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic):
        u = urlparse(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise LinkError(f"hub URL {url!r} is not http(s)://HOST:PORT")
        self.url, self.scheme, self.host = url, u.scheme, u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.node, self.key, self.timeout = node, key, timeout
        self.hub_pub = protocol.public_from_text(hub_pubkey) if hub_pubkey else None
        self.wall, self.monotonic = wall, monotonic
        self.offset = 0.0            # hub clock minus node wall clock, s (learned from signed answers)

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def raw(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes, int, int]:
        headers = {"Content-Type": "application/octet-stream", "Connection": "close", **(headers or {})}
        full = self.prefix + path
        sent = len(method) + len(full) + 12 + sum(len(k) + len(v) + 4 for k, v in headers.items()) + len(body) + 60
        conn = self._connection()
        try:
            conn.request(method, full, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            got = 17 + sum(len(k) + len(v) + 4 for k, v in resp.getheaders()) + len(data)
            return resp.status, dict(resp.getheaders()), data, sent, got
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            raise LinkError(f"{method} {path}: {e.__class__.__name__}: {e}", sent_bytes=sent) from e
        finally:
            conn.close()

    def call(self, method: str, path: str, body: bytes = b"", *, ok: tuple[int, ...] = (200,)) -> Answer:
        """A signed request; the answer must carry the hub's signature over our nonce. Signed with the
        node's clock corrected by the learned offset; if the hub still finds the time outside its
        window, its signed refusal says the hub's time: learn the offset and sign once more."""
        try:
            return self._call(method, path, body, ok)
        except ClockRefused as e:
            self.offset = e.offset
            return self._call(method, path, body, ok)

    def _call(self, method: str, path: str, body: bytes, ok: tuple[int, ...]) -> Answer:
        nonce = secrets.token_urlsafe(18)
        sent_at = protocol.utc_now_iso(datetime.fromtimestamp(self.wall() + self.offset, timezone.utc))
        headers = protocol.sign_request(self.key, method, path, self.node, nonce, sent_at, body)
        wb, mb = self.wall(), self.monotonic()
        status, rh, data, sent, got = self.raw(method, path, body, headers)
        wa, ma = self.wall(), self.monotonic()
        if status >= 500 or status in (408, 429):
            raise LinkError(f"{method} {path}: hub answered {status}", status=status, sent_bytes=sent + got)
        sig = _header(rh, protocol.H_SIG)
        if status == 401 and sig:
            self._clock_refusal(method, path, nonce, sig, data, (wb + wa) / 2)
        if status not in ok and status not in (409, 413):
            raise HubRefused(status, _error_text(data))
        if status in (409, 413) and not sig:
            raise HubRefused(status, _error_text(data))
        if self.hub_pub is None or not sig:
            raise LinkError(f"{method} {path}: answer is not signed by the hub (status {status})")
        try:
            protocol.verify(self.hub_pub, protocol.unb64(sig), protocol.response_bytes(nonce, data))
            doc = json.loads(data)
        except (protocol.ProtocolError, ValueError) as e:
            raise LinkError(f"{method} {path}: answer failed the hub signature check ({e})") from e
        return Answer(status, doc, sent, got, wb, wa, mb, ma)


    def _clock_refusal(self, method: str, path: str, nonce: str, sig: str, data: bytes, wall_mid: float) -> None:
        """A signed 401 for our nonce that says the request time is off: raise ClockRefused with the offset."""
        try:
            protocol.verify(self.hub_pub, protocol.unb64(sig), protocol.response_bytes(nonce, data))
            doc = json.loads(data)
            hub_time = datetime.fromisoformat(doc["hub_time"].replace("Z", "+00:00"))
        except (protocol.ProtocolError, ValueError, KeyError, TypeError, AttributeError):
            return                                     # not a genuine clock refusal: the caller reports the 401
        if doc.get("clock") == "skew":
            raise ClockRefused(_error_text(data), hub_time.timestamp() - wall_mid)


class ClockRefused(HubRefused):
    def __init__(self, message: str, offset: float):
        super().__init__(401, message)
        self.offset = offset


def _header(headers: dict[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def _error_text(data: bytes) -> str:
    try:
        return json.loads(data).get("error") or data[:200].decode(errors="replace")
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace")


def enroll(url: str, code: str, pubkey: str, *, timeout: float = 30) -> dict[str, Any]:
    client = HubClient(url, node="", key=None, hub_pubkey=None, timeout=timeout)
    body = json.dumps({"code": code, "pubkey": pubkey}).encode()
    status, _h, data, _s, _g = client.raw("POST", "/v1/enroll", body, {"Content-Type": "application/json"})
    if status != 200:
        raise HubRefused(status, _error_text(data))
    try:
        doc = json.loads(data)
        protocol.public_from_text(doc["hub_pubkey"])
        return doc
    except (ValueError, KeyError, protocol.ProtocolError) as e:
        raise LinkError(f"the hub's enrollment answer is not valid: {e}") from e
