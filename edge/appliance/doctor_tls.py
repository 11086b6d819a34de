"""`doctor` checks for TLS (docs/tls.md): the dates of the node's certificates, and plain MQTT
opened to the LAN. Read with `cryptography` directly: edge/ never imports sync."""
from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from edge.core.node import Node

RENEW = timedelta(days=30)        # the sync renews the node certificate below this (sync.pki.RENEW_DAYS)
FILES = (("county-ca.pem", "county root"), ("node-cert.pem", "node certificate"))


def certificates(node: Node, now: datetime, sys_root) -> list:
    from .doctor import Finding

    tls = node.data_dir / "tls"
    if not (tls / "node-cert.pem").exists():
        return [Finding("certificates", "warning", f"no node certificate in {tls} (not enrolled, or enrolled "
                        "before the county CA)", "enroll again: clinic-edge enroll --force --hub URL --hub-key "
                        "FINGERPRINT --code CODE")]
    out = []
    for name, what in FILES:
        path = tls / name
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as e:
            out.append(Finding("certificates", "problem", f"{path} cannot be read: {e}", "enroll again (--force)"))
            continue
        until, since = cert.not_valid_after_utc, cert.not_valid_before_utc
        detail = (f"{what} {path.name} ({cert.subject.rfc4514_string()}) valid {since:%Y-%m-%d} to "
                  f"{until:%Y-%m-%d}")
        if until <= now:
            out.append(Finding("certificates", "problem", detail + " (expired)",
                               "let the box sync with the hub (it renews the certificate), or enroll again"))
        elif until - now < RENEW and name == "node-cert.pem":
            out.append(Finding("certificates", "warning", detail + f" ({(until - now).days} days left)",
                               "the next sync renews it: check `clinic-edge sync status` for errors"))
        else:
            out.append(Finding("certificates", "ok", detail))
    return out


def plain_mqtt(node: Node, now: datetime, sys_root) -> list:
    from .doctor import Finding

    b = node.config["broker"]
    if b["plain_lan"]:
        return [Finding("mqtt tls", "warning", f"plain MQTT ({b['listen']}) is open to the LAN: device passwords "
                        "and readings cross it unencrypted", "move the devices to TLS (port 8883, county root) "
                        "and set [broker] plain_lan = false")]
    return [Finding("mqtt tls", "ok", f"plain MQTT only on loopback; devices use TLS on {b['tls_listen'] or '(off)'}")]
