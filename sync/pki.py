"""X.509 pieces shared by the node and the county hub (the county CA, CSRs, certificate dates).

The county hub is the certificate authority of its boxes (docs/tls.md): it signs each node's
certificate at enrollment and its own HTTPS server certificate. Keys are ECDSA P-256 (every TLS
stack the county meets accepts it, mosquitto included); private keys are written 0600.
"""
from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sync import protocol

RENEW_DAYS = 30          # a node asks for a new certificate when fewer days than this are left


class PkiError(protocol.ProtocolError):
    """A certificate or request that is malformed or not acceptable; the message says why."""


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def save_private(path: Path, data: bytes) -> None:
    """A private key file readable only by its owner, in a directory only its owner can enter."""
    from edge.core import durable

    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    durable.write_file(path, data, 0o600)


def save_public(path: Path, data: bytes) -> None:
    from edge.core import durable

    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    durable.write_file(path, data, 0o644)


def load_key(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def load_cert(data: bytes | str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data.encode() if isinstance(data, str) else data)
    except ValueError as e:
        raise PkiError(f"not a PEM certificate: {e}") from e


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def general_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def san_texts(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + \
        [str(v) for v in ext.get_values_for_type(x509.IPAddress)]


def make_csr(key, names: list[str]) -> bytes:
    """A certificate request for this node's key, asking for these host names / IP addresses."""
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "clinic-edge-node")]))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(general_names(names)), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as e:
        raise PkiError(f"not a PEM certificate request: {e}") from e
    if not csr.is_signature_valid:
        raise PkiError("the certificate request is not signed by its own key")
    return csr


def leaf_certificate(issuer_cert: x509.Certificate, issuer_key, public_key, common_name: str,
                     names: list[str], *, days: int, now: datetime, server: bool = True,
                     client: bool = True, backdate: timedelta = timedelta(hours=1)) -> x509.Certificate:
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
        ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
         .issuer_name(issuer_cert.subject).public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - backdate).not_valid_after(now + timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                      data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                      crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                        critical=False)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(general_names(names)), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def not_after(cert: x509.Certificate) -> datetime:
    return cert.not_valid_after_utc


def days_left(cert: x509.Certificate, now: datetime | None = None) -> float:
    now = now or datetime.now(timezone.utc)
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and friends
        return False


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
