"""Signed HTTP requests to the hub, and verification of its signed answers.

Plain `http.client` with a timeout on every socket operation, over TLS verified against the
pinned county root (sync.client.tls). One connection is kept alive across the requests of a
cycle, since a TLS handshake costs more than a small request (bench/tls_handshake.py); after
any error it is dropped, so a connection the link broke never poisons the next request; a request
that a kept-alive connection lost is sent once more on a new connection with a new nonce, since the
hub may have received it and refuses a nonce it has seen. Bytes sent and received are counted (request
line, headers and body) so the byte budget meters what the SIM card is charged for.
"""
from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlparse

from edge.core import backoff
from sync import protocol, signing

from . import tls
from .errors import HubBusy, HubRefused, HubUntrusted, LinkError

class ResumingHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that offers the TLS session of the last connection to the same hub
    (sync.client.tls.Sessions), so a cycle after the first skips the certificate exchange."""

    def __init__(self, host: str, port: int, *, timeout: float, context, sessions: tls.Sessions):
        super().__init__(host, port, timeout=timeout, context=context)
        self.sessions = sessions

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        session = self.sessions.get(self.host, self.port, self._context)
        try:
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host, session=session)
        except ssl.SSLError:
            self.sessions.forget(self.host, self.port)
            raise

    @property
    def resumed(self) -> bool:
        return bool(getattr(self.sock, "session_reused", False))


STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.BadStatusLine)


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
    nonce: str = ""             # the request's; with the body and the hub's signature, a compact receipt's proof
    body: bytes = b""
    signature: str = ""


class HubClient:
    def __init__(self, url: str, *, node: str, key, hub_pubkey: str | None, timeout: float = 30,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 context=None, sessions: tls.Sessions | None = None,
                 retry_after_cap: float = backoff.RETRY_AFTER_CAP):
        u = urlparse(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise LinkError(f"hub URL {url!r} is not http(s)://HOST:PORT")
        tls.check_hub_url(url)
        self.context = context
        self.sessions = tls.SESSIONS if sessions is None else sessions
        self._conn: http.client.HTTPConnection | None = None
        self.url, self.scheme, self.host = url, u.scheme, u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.node, self.key, self.timeout = node, key, timeout
        self.hub_pub = signing.public_from_text(hub_pubkey) if hub_pubkey else None
        self.wall, self.monotonic = wall, monotonic
        self.retry_after_cap = retry_after_cap   # longest Retry-After believed (a hostile hub cannot silence us)
        self.offset = 0.0            # hub clock minus node wall clock, s (learned from signed answers)

    def _connection(self) -> http.client.HTTPConnection:
        """A new connection (TLS verified against self.context, or the system roots)."""
        if self.scheme == "https":
            return ResumingHTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context,
                                           sessions=self.sessions)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def signing_time(self) -> str:
        """The time every signed request carries: the node's clock (`wall`, passed in) corrected by
        the offset learned from the hub's signed answers, so a box whose clock is years off is not
        refused for its time (docs/hub.md, the time window)."""
        return protocol.utc_now_iso(datetime.fromtimestamp(self.wall() + self.offset, timezone.utc))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def raw(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes, int, int]:
        headers = dict(headers or {})
        if body or method in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        full = self.prefix + path
        sent = (len(method) + len(full) + 12 + len(urlparse(self.url).netloc) + 8
                + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2 + len(body))
        reused = self._conn is not None
        conn = self._conn or self._connection()
        self._conn = None
        try:
            # only what the hub reads: no Accept-Encoding or Content-Type (bytes on a SIM card, issue 17.4)
            conn.putrequest(method, full, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
        except ssl.SSLCertVerificationError as e:
            conn.close()
            raise HubUntrusted(f"{method} {path}: the hub's TLS certificate is not from the county CA "
                               f"this node pinned: {e.verify_message}") from e
        except STALE as e:
            conn.close()
            if reused:    # the hub closed an idle kept-alive connection, or the link cut it mid-answer
                raise StaleConnection(f"{method} {path}: {e.__class__.__name__}: {e}", sent_bytes=sent) from e
            raise LinkError(f"{method} {path}: {e.__class__.__name__}: {e}", sent_bytes=sent) from e
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            conn.close()
            raise LinkError(f"{method} {path}: {e.__class__.__name__}: {e}", sent_bytes=sent) from e
        if isinstance(conn, ResumingHTTPSConnection) and conn.sock is not None:
            self.sessions.keep(self.host, self.port, conn.sock)
        if resp.will_close:
            conn.close()
        else:
            self._conn = conn
        got = 17 + sum(len(k) + len(v) + 4 for k, v in resp.getheaders()) + len(data)
        return resp.status, dict(resp.getheaders()), data, sent, got

    def call(self, method: str, path: str, body: bytes = b"", *, ok: tuple[int, ...] = (200,),
             batch: str | None = None) -> Answer:
        """A signed request; the answer must carry the hub's signature over our nonce (and, for a
        compact upload of `batch`, over this node and that batch: protocol.receipt_bytes). Signed with
        the node's clock corrected by the learned offset; if the hub still finds the time outside its
        window, its signed refusal says the hub's time: learn the offset and sign once more."""
        try:
            return self._signed_once(method, path, body, ok, batch)
        except StaleConnection:
            # Once more on a new connection, signed afresh: the hub may have received the first
            # (the link cut its answer), and it refuses a nonce it has seen (a replay, 409).
            return self._signed_once(method, path, body, ok, batch)

    def _signed_once(self, method: str, path: str, body: bytes, ok: tuple[int, ...], batch: str | None) -> Answer:
        try:
            return self._call(method, path, body, ok, batch)
        except ClockRefused as e:
            self.offset = e.offset
            return self._call(method, path, body, ok, batch)

    def _call(self, method: str, path: str, body: bytes, ok: tuple[int, ...], batch: str | None) -> Answer:
        nonce = secrets.token_urlsafe(16)      # 128 bits, 22 characters
        headers = protocol.sign_request(self.key, method, path, self.node, nonce, self.signing_time(), body)
        wb, mb = self.wall(), self.monotonic()
        status, rh, data, sent, got = self.raw(method, path, body, headers)
        wa, ma = self.wall(), self.monotonic()
        if status in (429, 503):      # "later": Retry-After, capped (docs/hub.md, "Admission control")
            wait = backoff.retry_after(_header(rh, "Retry-After"), now=wa + self.offset, date=_header(rh, "Date"),
                                       cap=self.retry_after_cap)
            if wait is not None:
                raise HubBusy(f"{method} {path}: hub busy ({status}), retry after {wait:.0f} s", wait,
                              status=status, sent_bytes=sent + got)
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
        suite = self.hub_pub.suite
        signed = protocol.receipt_bytes(self.node, batch, nonce, data, suite) if batch is not None \
            else protocol.response_bytes(nonce, data, suite)
        try:
            signing.verify(self.hub_pub, signing.unb64(sig), signed)
            doc = json.loads(data)
        except (protocol.ProtocolError, ValueError) as e:
            raise LinkError(f"{method} {path}: answer failed the hub signature check ({e})") from e
        if not isinstance(doc, dict):
            raise LinkError(f"{method} {path}: the hub's signed answer is not a JSON object")
        return Answer(status, doc, sent, got, wb, wa, mb, ma, nonce, data, sig)


    def _clock_refusal(self, method: str, path: str, nonce: str, sig: str, data: bytes, wall_mid: float) -> None:
        """A signed 401 for our nonce that says the request time is off: raise ClockRefused with the offset."""
        try:
            signing.verify(self.hub_pub, signing.unb64(sig), protocol.response_bytes(nonce, data, self.hub_pub.suite))
            doc = json.loads(data)
            hub_time = datetime.fromisoformat(doc["hub_time"].replace("Z", "+00:00"))
        except (protocol.ProtocolError, ValueError, KeyError, TypeError, AttributeError):
            return                                     # not a genuine clock refusal: the caller reports the 401
        if doc.get("clock") == "skew":
            raise ClockRefused(_error_text(data), hub_time.timestamp() - wall_mid)


class StaleConnection(LinkError):
    """A kept-alive connection broke under a request; the request may or may not have reached the hub."""


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


def enroll(url: str, code: str, pubkey: str, *, fingerprint: str | None = None, csr: str | None = None,
           timeout: float = 30) -> dict[str, Any]:
    """Register at the hub; the answer must be signed by the hub key whose fingerprint county IT
    gave (`hub node add` prints it) over our fresh nonce, and must name our key. Without a
    fingerprint only a hub on this machine (loopback) is believed."""
    tls.check_hub_url(url)
    client = HubClient(url, node="", key=None, hub_pubkey=None, timeout=timeout, context=tls.enrollment_context())
    if fingerprint is None and not tls.is_loopback(client.host):
        raise HubUntrusted("the hub key fingerprint is required (`clinic-edge enroll --hub-key`, or hub_key in "
                           "the boot partition's clinic-edge.toml): county IT's `hub node add` prints it")
    expected = signing.normal_fingerprint(fingerprint) if fingerprint else None
    nonce = secrets.token_urlsafe(16)      # 128 bits, 22 characters
    req = {"code": code, "pubkey": pubkey, "nonce": nonce, **({"csr": csr} if csr else {})}
    try:
        status, rh, data, _s, _g = client.raw("POST", "/v1/enroll", json.dumps(req).encode(),
                                              {"Content-Type": "application/json"})
    finally:
        client.close()
    if status != 200:
        raise HubRefused(status, _error_text(data))
    try:
        doc = json.loads(data)
        hub_pub = signing.public_from_text(doc["hub_pubkey"])
    except (ValueError, KeyError, TypeError, protocol.ProtocolError) as e:
        raise LinkError(f"the hub's enrollment answer is not valid: {e}") from e
    if expected is not None and signing.fingerprint(hub_pub) != expected:
        raise HubUntrusted(f"the hub at {url} answered with key {signing.fingerprint(hub_pub)}, not the key "
                           f"{expected} county IT gave: refusing it (a wrong fingerprint, or someone else answering)")
    sig = _header(rh, protocol.H_SIG)
    try:
        signing.verify(hub_pub, signing.unb64(sig or ""), protocol.response_bytes(nonce, data, hub_pub.suite))
    except protocol.ProtocolError as e:
        raise HubUntrusted(f"the hub at {url} did not prove its key: the enrollment answer is not signed "
                           f"over this request ({e})") from e
    if doc.get("pubkey") != pubkey or doc.get("nonce") != nonce:
        raise HubUntrusted("the hub registered another key than this node's (someone in between?): refusing")
    return doc
