"""The node's TLS material and how it talks TLS to the hub (docs/tls.md).

    DATA/tls/county-ca.pem   the county root, received at enrollment in the hub-signed answer
    DATA/tls/node-cert.pem   this node's certificate, issued by the county CA
    DATA/tls/node-key.pem    its key (0600; the directory is 0700)

Hub URLs: `https://` always; `http://` only to a loopback address (a hub on this same machine,
as in `clinic-edge demo` and tests), since nothing on the wire may read or change the traffic.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from sync import pki

from .errors import HubUntrusted

log = logging.getLogger(__name__)
CA_FILE, CERT_FILE, KEY_FILE = "county-ca.pem", "node-cert.pem", "node-key.pem"


def tls_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "tls"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_hub_url(url: str) -> None:
    """Refuse a hub URL whose traffic others could read: plain http:// to anything but loopback."""
    u = urlparse(url)
    if u.scheme == "https" and u.hostname:
        return
    if u.scheme == "http" and u.hostname and is_loopback(u.hostname):
        return
    if u.scheme == "http":
        raise HubUntrusted(f"hub URL {url} is plain http://: use https:// (http:// is allowed only to a hub on "
                           "this machine, 127.0.0.1 or localhost)")
    raise HubUntrusted(f"hub URL {url!r} is not https://HOST:PORT")


_CONTEXTS: dict[tuple, ssl.SSLContext] = {}


def client_context(data_dir: Path) -> ssl.SSLContext:
    """Verify the hub against the pinned county root (hostname checked against its certificate's
    names); before enrollment, or for a hub behind a public-CA proxy, against the system roots.
    The same context is handed out while the pinned root file is unchanged, since a TLS session
    can be resumed only through the context that made it (Sessions)."""
    ca = tls_dir(data_dir) / CA_FILE
    try:
        st = ca.stat()
        key = (str(ca), st.st_mtime_ns, st.st_size)
    except OSError:
        key = (str(ca), None, None)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = _new_client_context(ca)
    return _CONTEXTS[key]


def _new_client_context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca.exists() else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Sessions:
    """TLS sessions kept between connections to the hub (docs/tls.md, "Session resumption").

    A new connection that offers the hub's last session ticket is resumed: the hub sends no
    certificate chain and no new key exchange signature, about 800 bytes less on the SIM card
    than a full handshake (bench/sync.py, "tls"). The sync daemon runs many cycles in one process,
    so the cache lives as long as the process; a ticket the hub no longer takes (it restarted, or
    another worker answered) just gives a full handshake and a new ticket.
    """

    def __init__(self):
        self._held: dict[tuple[str, int], tuple[ssl.SSLContext, ssl.SSLSession]] = {}

    def get(self, host: str, port: int, context: ssl.SSLContext) -> ssl.SSLSession | None:
        """The session to offer, if it came from this context (ssl refuses one from another)."""
        held = self._held.get((host, port))
        return held[1] if held is not None and held[0] is context else None

    def keep(self, host: str, port: int, sock) -> None:
        """Remember the session of a connection that has read an answer (TLS 1.3 tickets come
        after the handshake, with the first bytes the hub sends)."""
        session = getattr(sock, "session", None)
        if session is not None and session.has_ticket:
            self._held[(host, port)] = (sock.context, session)

    def forget(self, host: str, port: int) -> None:
        self._held.pop((host, port), None)


SESSIONS = Sessions()   # one per process: every HubClient of the sync daemon shares it


def enrollment_context() -> ssl.SSLContext:
    """For the enrollment request only: the node has no county root yet, so the TLS certificate
    cannot be checked; the answer is authenticated instead by the hub key's signature over the
    node's nonce, checked against the fingerprint county IT gave (transport.enroll)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def csr_names(hub_host: str | None = None) -> list[str]:
    """Names clinic PCs may use for this box: its host name, NAME.local, and its LAN address."""
    host = socket.gethostname().split(".")[0] or "clinic-edge"
    names = [f"{host}.local", "localhost", "127.0.0.1"]
    addr = _lan_address(hub_host)
    if addr:
        names.append(addr)
    return names


def _lan_address(hub_host: str | None) -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((hub_host if hub_host and not is_loopback(hub_host) else "10.255.255.255", 9))
            ip = ipaddress.ip_address(s.getsockname()[0])
    except (OSError, ValueError):
        return None
    return str(ip) if ip.is_private and not ip.is_loopback else None


class PendingKey:
    """A node TLS key made for a CSR; written to disk only with the certificate it got."""

    def __init__(self, data_dir: Path, key=None):
        self.data_dir = Path(data_dir)
        self.key = key or pki.new_key()

    def csr(self, hub_host: str | None = None) -> str:
        return pki.make_csr(self.key, csr_names(hub_host)).decode()

    def save(self, ca_pem: str | None, cert_pem: str | None) -> None:
        """Check the certificate is for this key and issued by the county root, then store them."""
        if not cert_pem or not ca_pem:
            return
        ca, cert = pki.load_cert(ca_pem), pki.load_cert(cert_pem)
        if cert.public_key().public_numbers() != self.key.public_key().public_numbers():
            raise HubUntrusted("the certificate the hub sent is not for this node's key")
        if not pki.issued_by(cert, ca):
            raise HubUntrusted("the certificate the hub sent is not issued by the county CA it sent")
        d = tls_dir(self.data_dir)
        pki.save_private(d / KEY_FILE, pki.key_pem(self.key))
        pki.save_public(d / CERT_FILE, cert_pem.encode())
        pki.save_public(d / CA_FILE, ca_pem.encode())
        log.info("stored the node certificate (valid until %s) and the county CA", pki.not_after(cert))


def renewal_csr(data_dir: Path, *, now: datetime | None = None, hub_host: str | None = None) -> str | None:
    """A CSR (for the node's current key) when its certificate has under pki.RENEW_DAYS left."""
    d = tls_dir(data_dir)
    if not (d / CERT_FILE).exists() or not (d / KEY_FILE).exists():
        return None
    cert = pki.load_cert((d / CERT_FILE).read_bytes())
    if pki.days_left(cert, now or datetime.now(timezone.utc)) >= pki.RENEW_DAYS:
        return None
    return pki.make_csr(pki.load_key(d / KEY_FILE), csr_names(hub_host)).decode()


def store_renewal(data_dir: Path, doc: dict) -> bool:
    """Keep a renewed certificate from a hub-signed hello answer; False when there is none."""
    if not doc.get("node_cert"):
        if doc.get("cert_error"):
            log.warning("the hub did not renew the node certificate: %s", doc["cert_error"])
        return False
    d = tls_dir(data_dir)
    pinned = (d / CA_FILE).read_bytes().decode() if (d / CA_FILE).exists() else doc.get("ca_cert")
    PendingKey(data_dir, pki.load_key(d / KEY_FILE)).save(pinned, doc["node_cert"])
    return True
