"""The county CA the hub keeps: it signs node certificates (at enrollment and renewal) and the
hub's own HTTPS server certificate. Files in the hub's data directory (docs/tls.md):

    hub/ca/county-ca-key.pem   0600, directory 0700 (never leaves the hub)
    hub/ca/county-ca.pem       the county root county IT installs on clinic PCs and tablets
    hub/tls/hub-cert.pem       the server certificate, for [hub] names and the listen address
    hub/tls/hub-key.pem        0600
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from edge.core import durable
from sync import pki

log = logging.getLogger(__name__)
CA_DAYS = 20 * 365
NODE_DAYS = 397          # browsers refuse server certificates valid for longer than this
SERVER_DAYS = 397
# A box without a real-time clock starts with the time fake-hwclock saved (or the image's build
# time) until NTP or the hub's receipts correct it; Python's ssl checks certificates against that
# clock. The CA and the hub's server certificate (checked only by nodes, not browsers) therefore
# start two years before they are made, so a box whose clock is behind still connects.
EARLY_CLOCK = timedelta(days=730)


@dataclass
class CountyCA:
    cert: x509.Certificate
    key: object
    dir: Path

    @property
    def pem(self) -> bytes:
        return pki.cert_pem(self.cert)

    @property
    def fingerprint(self) -> str:
        return pki.cert_fingerprint(self.cert)

    def issue_node(self, csr_pem: str, node: str, *, now: datetime, forbidden: set[str] = frozenset()) -> bytes:
        """The node's certificate for the key in its CSR; the subject is the enrolled name (not what
        the node asks for), the names it asks for only if they are its own (docs/tls.md)."""
        csr = pki.load_csr(csr_pem)
        names = [node, f"{node}.local"] + [n for n in pki.san_texts(csr) if node_may_use(n, node, forbidden)]
        names = list(dict.fromkeys(names))
        cert = pki.leaf_certificate(self.cert, self.key, csr.public_key(), node, names, days=NODE_DAYS, now=now)
        return pki.cert_pem(cert)

    def server_files(self, names: list[str], *, now: datetime) -> tuple[Path, Path]:
        """The hub's HTTPS certificate and key, (re)issued when missing, for other names, or
        within pki.RENEW_DAYS of expiry."""
        with durable.exclusive(_lock(self.dir.parent)):
            return self._server_files(names, now=now)

    def _server_files(self, names: list[str], *, now: datetime) -> tuple[Path, Path]:
        tls = self.dir.parent / "tls"
        cert_path, key_path = tls / "hub-cert.pem", tls / "hub-key.pem"
        if cert_path.exists() and key_path.exists():
            cert = pki.load_cert(cert_path.read_bytes())
            if sorted(pki.san_texts(cert)) == sorted(names) and pki.issued_by(cert, self.cert) \
                    and pki.days_left(cert, now) > pki.RENEW_DAYS:
                return cert_path, key_path
        key = pki.new_key()
        cert = pki.leaf_certificate(self.cert, self.key, key.public_key(), names[0], names, days=SERVER_DAYS,
                                    now=now, client=False, backdate=EARLY_CLOCK)
        pki.save_private(key_path, pki.key_pem(key))
        pki.save_public(cert_path, pki.cert_pem(cert))
        log.info("issued the hub's server certificate for %s", ", ".join(names))
        return cert_path, key_path


def node_may_use(name: str, node: str, forbidden: set[str]) -> bool:
    """A node may name itself (NAME, NAME.local, any *.local), private LAN addresses and loopback
    (only reachable from the box itself: a browser on the box, the demo), never another name of
    the hub or of a public host."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        if name == "localhost":
            return True
        return name not in forbidden and (name.endswith(".local") or name == node)
    return ip.is_loopback or (ip.is_private and name not in forbidden)


def ca_dir(hub_dir: Path) -> Path:
    return hub_dir / "ca"


def load(hub_dir: Path) -> CountyCA | None:
    d = ca_dir(hub_dir)
    if not (d / "county-ca.pem").exists():
        return None
    return CountyCA(pki.load_cert((d / "county-ca.pem").read_bytes()), pki.load_key(d / "county-ca-key.pem"), d)


def _lock(hub_dir: Path) -> Path:
    return hub_dir / ".keys.lock"


def load_or_create(hub_dir: Path, *, name: str = "clinic-edge county CA", now: datetime | None = None) -> CountyCA:
    """The county CA, made on first start. Two hubs starting at once on one data directory agree
    on one CA: the second waits for the first's key and certificate, then loads them."""
    found = load(hub_dir)
    if found:
        return found
    with durable.exclusive(_lock(hub_dir)):
        return load(hub_dir) or _create(hub_dir, name, now)


def _create(hub_dir: Path, name: str, now: datetime | None) -> CountyCA:
    now = now or datetime.now(timezone.utc)
    d = ca_dir(hub_dir)
    key = pki.new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - EARLY_CLOCK).not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    pki.save_private(d / "county-ca-key.pem", pki.key_pem(key))
    pki.save_public(d / "county-ca.pem", pki.cert_pem(cert))
    log.info("created the county CA in %s (fingerprint %s)", d, pki.cert_fingerprint(cert))
    return CountyCA(cert, key, d)


def server_names(configured: str, listen: str) -> list[str]:
    """[hub] names (comma-separated) plus the listen host, unless it is a wildcard address."""
    names = [n.strip() for n in configured.split(",") if n.strip()]
    host = listen.rpartition(":")[0].strip("[]")
    if host and host not in ("0.0.0.0", "::"):
        names.append(host)
    if not names:
        names = ["localhost", "127.0.0.1"]
    return list(dict.fromkeys(names))
