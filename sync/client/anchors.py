"""The node's side of audit anchoring (docs/audit.md): each hello tells the hub the audit chain's
head and the hash the chain has now at the entry the hub last anchored; the hub's signed answer
names the head it accepted, which is kept for `clinic-edge audit verify` (edge.core.audit)."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from edge.core import audit

from sync import protocol, signing

log = logging.getLogger(__name__)


def seal(node, *, now: datetime) -> None:
    """Seal the audit head with the MAC key only this process (not the web service) can read."""
    key = node.secret(audit.MAC_KEY_FILE).encode()
    try:
        with node.store.atomic() as conn:
            audit.seal(conn, key, now=now)
    except ValueError as e:
        log.error("sync: %s", e)


def claim(store) -> dict[str, Any]:
    conn = store.conn
    seq, h = audit.head(conn)
    out: dict[str, Any] = {"seq": seq, "hash": h}
    a = audit.anchor(conn)
    if a:
        out["at_anchor"] = {"seq": a["seq"], "hash": audit.hash_at(conn, a["seq"])}
    # the head may be an MQTT commit not yet synced (docs/mqtt.md, "What a reading writes"): the
    # hub anchors what it is told, so it must survive a power cut first
    store.make_durable()
    return out


def keep(store, doc: dict[str, Any], *, node: str, hub_pubkey: str, now: datetime) -> None:
    """Record the hub's signed anchor from a hello answer (ignored unless signed for this node)."""
    signed = doc.get("audit_anchor")
    if not isinstance(signed, dict):
        return
    try:
        body = protocol.verify_document(signing.public_from_text(hub_pubkey), signed)
    except protocol.ProtocolError as e:
        log.warning("sync: the hub's audit anchor is not signed by the hub (%s); not kept", e)
        return
    if body.get("type") != "audit_anchor" or body.get("node") != node or not isinstance(body.get("seq"), int) \
            or not isinstance(body.get("hash"), str):
        return
    problem = doc.get("audit_problem")
    with store.atomic() as conn:
        audit.record_anchor(conn, seq=body["seq"], hash_=body["hash"], at=str(body.get("at")),
                            problem=str(problem)[:500] if problem else None, signed=signed, now=now)
