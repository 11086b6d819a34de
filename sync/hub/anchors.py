"""Audit anchors: the hub keeps the head (sequence number, hash) of every node's audit chain.

Each hello carries the node's audit head and the hash its chain has *now* at the sequence number
the hub last anchored. The hub accepts a head that extends the anchored one; anything else —
a lower sequence (truncated), the same sequence with another hash, or a different hash at the
anchored entry (rewritten and re-hashed) — is recorded as a problem, shown on the dashboard and by
`clinic-edge hub audit NODE`, and the anchor stays at the last good head, so the node's own
`audit verify` keeps reporting it too (edge/core/audit.py, docs/audit.md).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sync import protocol
from .storage import HubStore, now_iso

HASH = re.compile(r"[0-9a-f]{64}")
MAX_SEQ = 2 ** 62


def _head(doc: Any) -> tuple[int, str] | None:
    if not isinstance(doc, dict):
        return None
    seq, h = doc.get("seq"), doc.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < MAX_SEQ:
        return None
    if not isinstance(h, str) or not HASH.fullmatch(h):
        return None
    return seq, h


UNPROVEN = "unproven"    # judge(): the node showed an older anchor (or none): answer with ours, judge next time


def judge(prev: tuple[int, str] | None, claim: dict[str, Any], known=lambda seq: None) -> str | None:
    """Why `claim` (a node's reported head) does not extend `prev` (the anchored head), None if it
    does, or UNPROVEN. `known(seq)` is the hash of an older good head the hub kept, or None.

    A node that lost the hub's last answer still shows the anchor before it (or none at all): that
    is not flagged, the anchor is not moved, and the answer gives the node the current anchor, so
    its next hello proves it (or shows the rewrite)."""
    head = _head(claim)
    if head is None:
        return "the audit head the node sent is malformed"
    if prev is None:
        return None
    (seq, h), (pseq, ph) = head, prev
    if seq < pseq:
        return f"audit head went back from entry {pseq} to {seq}: the node's audit log was truncated or replaced"
    if seq == pseq:
        return None if h == ph else f"audit entry {seq} has a different hash than anchored: the log was rewritten"
    at = claim.get("at_anchor")
    if not isinstance(at, dict) or at.get("seq") != pseq:
        older = known(at.get("seq")) if isinstance(at, dict) and isinstance(at.get("seq"), int) else None
        if older is not None and at.get("hash") != older:
            return f"audit entry {at['seq']} differs from the one the hub anchored: the log was rewritten"
        return UNPROVEN
    if at.get("hash") != ph:
        return f"audit entry {pseq} differs from the one the hub anchored: the log was rewritten"
    return None


def report(store: HubStore, key, node: str, claim: Any, *, now: datetime) -> dict[str, Any]:
    """Judge and keep one reported head; the signed answer for the node (anchor and any problem)."""
    if claim is None:
        return {}
    good = store.audit_heads(node, good_only=True, limit=1)
    prev = (good[0]["seq"], good[0]["hash"]) if good else None
    problem = judge(prev, claim, lambda seq: store.good_audit_hash(node, seq))
    head = _head(claim)
    if problem == UNPROVEN:
        problem = None
    elif problem is not None:
        store.add_audit_head(node, head[0] if head else -1, head[1] if head else "", problem, now=now)
    elif head != prev:
        store.add_audit_head(node, head[0], head[1], None, now=now)
        prev = head
    out: dict[str, Any] = {}
    if prev is not None:
        out["audit_anchor"] = protocol.sign_document(key, {"type": "audit_anchor", "node": node, "seq": prev[0],
                                                           "hash": prev[1], "at": now_iso(now)})
    if problem:
        out["audit_problem"] = problem
    return out
