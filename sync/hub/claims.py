"""One forwarder at a time per delivery (docs/interop.md §5, "Two forwarders").

Before sending a due delivery, `hub forward` claims it: `claimed_by` = this host:pid and
`claimed_until` = now + LEASE_S, written only if the row is still due and still carries the claim
that was read (compare and set, atomic on both databases). On PostgreSQL the row is first taken with
SELECT ... FOR UPDATE SKIP LOCKED in the same transaction, so a second forwarder skips it instead
of waiting. Recording the outcome clears the claim. A claim is free again when its lease is over,
or at once when it was made on this host by a process that is no longer running (a forwarder killed
mid-send: its delivery is sent again right away, as before claims, and stored once by the
platform). On SQLite every forwarder is on the hub's host, so that check always applies.
"""
from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

import sqlalchemy as sa

from edge.core.node import pid_alive

from .delivery_tables import deliveries
from .storage import HubStore, now_iso

LEASE_S = 600.0              # longer than a send can take (the transports time out well within it)
DUE = ("pending", "retrying")
KEY = ("profile", "node", "kind", "record_id", "version")


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_free(row: dict, now: datetime, *, host: str | None = None) -> bool:
    """No claim, a lease that is over, or a claim of a process of this host that has ended."""
    by, until = row.get("claimed_by"), row.get("claimed_until")
    if not by or not until or until <= now_iso(now):
        return True
    claim_host, _, pid = by.rpartition(":")
    return claim_host == (host or socket.gethostname()) and pid.isdigit() and not pid_alive(int(pid))


def claim(store: HubStore, row: dict, *, now: datetime, who: str | None = None) -> bool:
    """Take `row` (as read from the due list) for this forwarder; False if another one has it."""
    if not is_free(row, now):
        return False
    key = [getattr(deliveries.c, k) == row[k] for k in KEY]
    same = [deliveries.c.state.in_(DUE), deliveries.c.next_at <= now_iso(now),
            deliveries.c.claimed_by.is_(None) if row.get("claimed_by") is None
            else deliveries.c.claimed_by == row["claimed_by"],
            deliveries.c.claimed_until.is_(None) if row.get("claimed_until") is None
            else deliveries.c.claimed_until == row["claimed_until"]]
    with store.begin() as c:
        if c.dialect.name == "postgresql":
            locked = c.execute(sa.select(deliveries.c.version).where(*key, *same)
                               .with_for_update(skip_locked=True)).first()
            if locked is None:
                return False
        done = c.execute(deliveries.update().where(*key, *same).values(
            claimed_by=who or me(), claimed_until=now_iso(now + timedelta(seconds=LEASE_S))))
        return done.rowcount == 1
