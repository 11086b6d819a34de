"""Forwarding the county's records to its platform, with each delivery tracked (issue 19.2,
docs/interop.md §5).

Every outbound profile gets one hub_deliveries row per record version of a kind that has a
standard document (sync/standards). `forward_once` sends what is due, one document at a time, and
records each outcome in its own transaction right after the send: delivered; refused, with the
platform's reason (never retried, never blocking the rest); or retrying, with capped exponential
backoff. A forwarder killed between a send and its record resends that one document next time;
the document's id is stable per record version and the FHIR entries are conditional creates, so
the platform stores it once. Each due delivery is claimed first (sync/hub/claims.py), so two
forwarders at once never send the same one.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import sqlalchemy as sa

from sync.delivery import states, transport as transports
from sync.standards import StandardsError, documents
from sync.standards.identity import Clinic

from . import claims
from .delivery_tables import deliveries, outbound
from .storage import HubStore, now_iso, records

STATES = states.STATES


class ForwardingError(ValueError):
    """A profile that cannot be configured as given (says which field and why)."""


@dataclass(frozen=True)
class Profile:
    name: str
    county: str
    kind: str
    target: str
    clinics: dict[str, dict[str, str]]
    enabled: bool = True

    def clinic(self, node: str) -> Clinic:
        c = self.clinics.get(node) or {}
        return Clinic(node, c.get("name") or node, c.get("code") or "")


def add_profile(store: HubStore, name: str, *, county: str, kind: str, target: str,
                clinics: dict[str, dict[str, str]] | None = None, now: datetime) -> Profile:
    if not re.fullmatch(r"[\w.-]{1,64}", name):
        raise ForwardingError("name: 1-64 letters, digits, '.', '_' or '-'")
    if not re.fullmatch(r"\d{6}", county):
        raise ForwardingError(f"county: the county's 6-digit division code, not {county!r}")
    problem = transports.target_problem(kind, target)
    if problem:
        raise ForwardingError(problem)
    values = dict(county=county, kind=kind, target=target, clinics=json.dumps(clinics or {}, ensure_ascii=False),
                  enabled=1)
    with store.begin() as c:
        if c.execute(sa.select(outbound.c.name).where(outbound.c.name == name)).first():
            c.execute(outbound.update().where(outbound.c.name == name).values(**values))
        else:
            c.execute(outbound.insert().values(name=name, created_at=now_iso(now), **values))
    return Profile(name, county, kind, target, clinics or {})


def profiles(store: HubStore) -> list[Profile]:
    with store.engine.connect() as c:
        rows = c.execute(sa.select(outbound).order_by(outbound.c.name)).mappings().all()
    return [Profile(r["name"], r["county"], r["kind"], r["target"], json.loads(r["clinics"]), bool(r["enabled"]))
            for r in rows]


def enqueue(store: HubStore, profile: Profile, *, now: datetime) -> int:
    """A pending delivery for every stored record version this profile has not seen yet."""
    seen = sa.select(deliveries.c.record_id).where(
        deliveries.c.profile == profile.name, deliveries.c.node == records.c.node,
        deliveries.c.kind == records.c.kind, deliveries.c.record_id == records.c.record_id,
        deliveries.c.version == records.c.version)
    q = sa.select(sa.literal(profile.name), records.c.node, records.c.kind, records.c.record_id, records.c.version,
                  sa.literal("pending"), sa.literal(now_iso(now)), sa.literal(now_iso(now)), sa.literal(now_iso(now))
                  ).where(records.c.kind.in_(documents.KINDS), ~seen.exists())
    if profile.clinics:
        q = q.where(records.c.node.in_(sorted(profile.clinics)))
    cols = ["profile", "node", "kind", "record_id", "version", "state", "next_at", "created_at", "updated_at"]
    with store.begin() as c:
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... SELECT
        return len(c.execute(deliveries.insert().from_select(cols, q).returning(deliveries.c.version)).all())


def _due(store: HubStore, profile: Profile, now: datetime, limit: int) -> list[dict[str, Any]]:
    order = sa.case((deliveries.c.kind == "resident", 0), else_=1)    # the person before their visits
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(
            sa.select(deliveries).where(deliveries.c.profile == profile.name,
                                        deliveries.c.state.in_(states.DUE),
                                        deliveries.c.next_at <= now_iso(now))
            .order_by(order, deliveries.c.created_at, deliveries.c.node, deliveries.c.record_id,
                      deliveries.c.version).limit(limit)).mappings()]


def _payload(c, node: str, kind: str, record_id: str, version: int | None = None) -> dict | None:
    q = sa.select(records.c.payload).where(records.c.node == node, records.c.kind == kind,
                                           records.c.record_id == record_id)
    q = q.where(records.c.version == version) if version is not None else q.order_by(records.c.version.desc())
    text = c.execute(q.limit(1)).scalar()
    return json.loads(text) if text else None


def _document(store: HubStore, row: dict, clinic: Clinic) -> documents.Document:
    with store.engine.connect() as c:
        payload = _payload(c, row["node"], row["kind"], row["record_id"], row["version"])
        resident = _payload(c, row["node"], "resident", payload.get("resident_id", "")) \
            if row["kind"] in ("followup", "health_check") else None
    return documents.build(row["kind"], payload, resident, clinic)


def _record(store: HubStore, row: dict, state: str, reason: str | None, doc_id: str | None, *,
            now: datetime, rand: Callable[[], float]) -> None:
    values = {**states.after(row["attempts"], state, reason, doc_id, now=now, rand=rand, iso=now_iso),
              "claimed_by": None, "claimed_until": None}
    key = [getattr(deliveries.c, k) == row[k] for k in ("profile", "node", "kind", "record_id", "version")]
    with store.begin() as c:
        c.execute(deliveries.update().where(*key).values(**values))


def deliver(store: HubStore, profile: Profile, row: dict, *, now: datetime, opener=None,
            rand: Callable[[], float] = random.random) -> str:
    """Send one due delivery and record its outcome; returns the new state."""
    try:
        doc = _document(store, row, profile.clinic(row["node"]))
    except (StandardsError, *states.MALFORMED) as e:
        # refused here (the others still go), or retrying while its resident has not reached the hub
        state, reason = states.of_build_error(e)
        _record(store, row, state, reason, None, now=now, rand=rand)
        return state
    kw = {"opener": opener} if opener else {}
    state, reason = states.of_outcome(transports.send(profile.kind, profile.target, doc, **kw))
    _record(store, row, state, reason, doc.doc_id, now=now, rand=rand)
    return state


def forward_once(store: HubStore, *, now: Callable[[], datetime], limit: int = 500, opener=None,
                 rand: Callable[[], float] = random.random) -> dict[str, dict[str, int]]:
    """Enqueue new records and send what is due, for every enabled profile; counts per profile."""
    done: dict[str, dict[str, int]] = {}
    for profile in profiles(store):
        if not profile.enabled:
            continue
        counts = done.setdefault(profile.name, {"new": enqueue(store, profile, now=now())})
        for row in _due(store, profile, now(), limit):
            if not claims.claim(store, row, now=now()):
                continue                                   # another forwarder is sending it
            state = deliver(store, profile, row, now=now(), opener=opener, rand=rand)
            counts[state] = counts.get(state, 0) + 1
    return done


def listing(store: HubStore, *, state: str | None = None, profile: str | None = None,
            limit: int = 200) -> list[dict[str, Any]]:
    q = sa.select(deliveries)
    if state:
        q = q.where(deliveries.c.state == state)
    if profile:
        q = q.where(deliveries.c.profile == profile)
    order = sa.case((deliveries.c.state == "refused", 0), (deliveries.c.state == "retrying", 1),
                    (deliveries.c.state == "pending", 2), else_=3)
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(q.order_by(order, deliveries.c.updated_at.desc()).limit(limit)).mappings()]


def totals(store: HubStore) -> dict[str, dict[str, int]]:
    """profile -> state -> number of deliveries."""
    with store.engine.connect() as c:
        rows = c.execute(sa.select(deliveries.c.profile, deliveries.c.state, sa.func.count())
                         .group_by(deliveries.c.profile, deliveries.c.state)).all()
    out: dict[str, dict[str, int]] = {}
    for p, s, n in rows:
        out.setdefault(p, {})[s] = n
    return out
