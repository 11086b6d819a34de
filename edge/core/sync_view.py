"""What the node knows about its sync with the county, read from the store (no network here).

Shared by `clinic-edge sync status --json` (sync.client) and the web UI's sync page, which may
import only edge.core. Also: asking the sync daemon for a cycle now, and resolving a resident
the hub and this clinic both changed.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from . import audit, outbox
from .reading import utc_iso

SOFTWARE = "clinic-edge/0.1.0"
REQUEST_FILE = ("run", "sync-now")      # the sync daemon polls for this file every 2 s


def state(store, key: str, default: Any = None) -> Any:
    v = store.scalar("SELECT value FROM node_state WHERE key = ?", ("sync." + key,))
    return default if v is None else json.loads(v)


def today(node) -> str:
    """Today's date in the clinic's zone, on the best time known (Node.today)."""
    return node.today().isoformat()


def report(node) -> dict[str, Any]:
    store = node.store
    oldest = store.scalar("SELECT min(created_at) FROM outbox WHERE acked_at IS NULL AND quarantined_at IS NULL")
    quarantined = store.query("SELECT seq, kind, record_id, version, quarantine_reason AS reason, quarantined_at"
                              " FROM outbox WHERE quarantined_at IS NOT NULL ORDER BY seq LIMIT 100")
    day = today(node)
    usage = {r["kind"]: {"bytes": r["bytes"], "records": r["records"]}
             for r in store.query("SELECT kind, bytes, records FROM sync_usage WHERE day = ?", (day,))}
    enrolled = store.one("SELECT node, hub_url FROM sync_enrollment WHERE id = 1")
    return {
        "enrolled": bool(enrolled), "node": enrolled and enrolled["node"], "hub": enrolled and enrolled["hub_url"],
        "backlog": outbox.backlog(store.conn), "oldest_pending": oldest,
        "pending_batches": store.scalar("SELECT count(*) FROM sync_batches WHERE state = 'pending'"),
        "last_success": state(store, "last_success"), "last_attempt": state(store, "last_attempt"),
        "last_error": state(store, "last_error"), "clock_offset_s": state(store, "clock_offset_s"),
        "quarantined": store.scalar("SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL"),
        "quarantined_records": quarantined,
        "conflicts": store.scalar("SELECT count(*) FROM sync_conflicts WHERE resolved_at IS NULL"),
        "day": day, "bytes_today": sum(u["bytes"] for u in usage.values()), "usage_today": usage,
        "daily_budget_bytes": node.config["sync"]["daily_budget_bytes"], "software": SOFTWARE,
        "batch_records": state(store, "batch_records"), "chunk_bytes": state(store, "chunk_bytes"),
        # update bundles: bytes today are in usage_today["_update"]; a bundle that does not fit waits
        "update_budget_bytes": node.config["sync"]["update_budget_bytes"],
        "update_waiting": state(store, "update_waiting"),
    }


def request_now(node) -> None:
    """Ask the running sync daemon for a cycle within seconds (the web UI's "sync now")."""
    node.path(*REQUEST_FILE).touch()


def conflicts(store) -> list[dict[str, Any]]:
    rows = store.query("SELECT id, kind, record_id, local, remote, remote_version, detected_at FROM sync_conflicts"
                       " WHERE resolved_at IS NULL ORDER BY id")
    for r in rows:
        r["local"], r["remote"] = json.loads(r["local"]), json.loads(r["remote"])
        r["fields"] = sorted(k for k in r["remote"] if k in r["local"] and r["local"].get(k) != r["remote"][k])
    return rows


def resolve(store, conflict_id: int, keep: str, *, actor: str, now: datetime) -> None:
    """keep='local': this clinic's resident stands (it is sent up as it is);
    keep='hub': the county's values replace the local ones (and go up as a new version)."""
    if keep not in ("local", "hub"):
        raise ValueError("keep must be 'local' or 'hub'")
    with store.atomic() as conn:
        row = conn.execute("SELECT record_id, remote, remote_version FROM sync_conflicts WHERE id = ?"
                           " AND resolved_at IS NULL", (conflict_id,)).fetchone()
        if row is None:
            return
        rid, remote, remote_version = row[0], json.loads(row[1]), row[2]
        local = conn.execute("SELECT * FROM residents WHERE id = ?", (rid,)).fetchone()
        names = [d[0] for d in conn.execute("SELECT * FROM residents LIMIT 0").description]
        local = dict(zip(names, local)) if local else {}
        if keep == "hub" and local:
            values = {k: v for k, v in remote.items() if k in names and k not in ("id", "version", "created_at",
                                                                                  "updated_at")}
            sets = ", ".join(f"{k} = :{k}" for k in values)
            conn.execute(f"UPDATE residents SET {sets + ', ' if sets else ''}updated_at = :_at, version = version + 1"
                         " WHERE id = :_id", {**values, "_at": utc_iso(now), "_id": rid})
            after = dict(zip(names, conn.execute("SELECT * FROM residents WHERE id = ?", (rid,)).fetchone()))
            outbox.add(conn, kind="resident", record_id=rid, payload=after, at=now, version=after["version"])
            local = after
        if local:
            conn.execute("INSERT OR REPLACE INTO sync_resident_base (resident_id, hub_version, local_version)"
                         " VALUES (?,?,?)", (rid, remote_version, local["version"]))
        conn.execute("UPDATE sync_conflicts SET resolved_at = ?, resolution = ? WHERE id = ?",
                     (utc_iso(now), keep, conflict_id))
        audit.append(conn, actor=actor, action=f"resident.conflict_keep_{keep}", entity="resident", entity_id=rid,
                     at=now, after={"remote_version": remote_version})
