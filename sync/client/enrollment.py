"""Enrolling this node at the county hub: the function `clinic-edge enroll` and first boot call
(first boot through the `clinic_edge.enrollment` entry point, edge/core/enrollment.py).

Errors come back as edge.core.enrollment's exceptions, their text the one county IT reads.
"""
from __future__ import annotations

from typing import Any

from edge.core.enrollment import AlreadyEnrolled, EnrollmentRefused, HubNotTrusted, HubUnreachable
from edge.core.node import Node

from sync import protocol, signing

from .errors import HubRefused, HubUntrusted, LinkError


def enroll(node: Node, hub_url: str, code: str, hub_key: str | None, *, force: bool = False) -> dict[str, Any]:
    """Enroll with the one-time `code`; returns the hub's signed answer."""
    existing = node.store.one("SELECT node, hub_url FROM sync_enrollment WHERE id = 1")
    if existing and not force:
        raise AlreadyEnrolled(f"already enrolled as {existing['node']} at {existing['hub_url']} "
                              "(use --force to replace)")
    try:
        return enroll_at(node, hub_url, code, hub_key)
    except HubRefused as e:
        raise EnrollmentRefused(f"enrollment refused: {e.reason}") from e
    except (HubUntrusted, protocol.ProtocolError) as e:
        raise HubNotTrusted(f"enrollment refused: {e}") from e
    except LinkError as e:
        raise HubUnreachable(f"cannot reach the hub at {hub_url}: {e}") from e


def enroll_at(node: Node, hub_url: str, code: str, hub_key: str | None, *, timeout: float | None = None) -> dict:
    """Enroll (sending a CSR for the node's TLS key), keep the certificates, commit the identity.
    The node key is made in the suite the code is for (docs/crypto-suites.md)."""
    from urllib.parse import urlparse

    from . import state, tls, transport

    url = hub_url.rstrip("/")
    key = state.new_node_key(node, signing.code_suite(code))   # "SM-..." codes: an SM2 key
    pending = tls.PendingKey(node.data_dir)
    try:
        doc = transport.enroll(url, code, signing.public_text(key), fingerprint=hub_key,
                               csr=pending.csr(urlparse(url).hostname),
                               timeout=timeout or node.config["sync"]["timeout_seconds"])
        pending.save(doc.get("ca_cert"), doc.get("node_cert"))
    except BaseException:
        state.discard_new_key(node)
        raise
    state.commit_enrollment(node, name=doc["node"], hub_url=url, hub_pubkey=doc["hub_pubkey"],
                            now=node.clock.now())
    return doc
