"""Sync's status contribution (entry point `clinic_edge.status` "sync", contract in
edge/core/status.py): what the node knows about its sync with the county, read from the store.

Shared by `clinic-edge sync status --json` and the workbench's sync page, and the "hub" line of
`clinic-edge doctor`. Also: asking the sync daemon for a cycle now, and resolving a resident the
hub and this clinic both changed. Imports edge.core only (tests/test_layering.py), so the web app
and doctor load it without sync's network and signing code.
"""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from edge.core import audit, outbox, release
from edge.core.field_migration import open_json, write_index
from edge.core.reading import parse_iso, utc_iso
from edge.core.resident_search import write_keys
from edge.core.status import Finding

REQUEST_FILE = ("run", "sync-now")      # the sync daemon polls for this file every 2 s


def software() -> str:
    """What the node tells the hub it runs: clinic-edge/<the installed version>."""
    return f"{release.PROJECT}/{release.running_version()}"


def setting(store, key: str, default: Any = None) -> Any:
    """A value the sync client keeps in node_state (key `sync.<key>`, JSON)."""
    v = store.scalar("SELECT value FROM node_state WHERE key = ?", ("sync." + key,))
    return default if v is None else json.loads(v)


def report(node) -> dict[str, Any]:
    store = node.store
    oldest = store.scalar("SELECT min(created_at) FROM outbox WHERE acked_at IS NULL AND quarantined_at IS NULL")
    quarantined = store.query("SELECT seq, kind, record_id, version, quarantine_reason AS reason, quarantined_at"
                              " FROM outbox WHERE quarantined_at IS NOT NULL ORDER BY seq LIMIT 100")
    day = node.today().isoformat()
    usage = {r["kind"]: {"bytes": r["bytes"], "records": r["records"]}
             for r in store.query("SELECT kind, bytes, records FROM sync_usage WHERE day = ?", (day,))}
    enrolled = store.one("SELECT node, hub_url FROM sync_enrollment WHERE id = 1")
    busy = busy_until(node)
    return {
        "enrolled": bool(enrolled), "node": enrolled and enrolled["node"], "hub": enrolled and enrolled["hub_url"],
        "backlog": outbox.backlog(store.conn), "oldest_pending": oldest,
        "pending_batches": store.scalar("SELECT count(*) FROM sync_batches WHERE state = 'pending'"),
        "last_success": setting(store, "last_success"), "last_attempt": setting(store, "last_attempt"),
        "last_error": setting(store, "last_error"), "clock_offset_s": setting(store, "clock_offset_s"),
        "quarantined": store.scalar("SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL"),
        "quarantined_records": quarantined,
        "conflicts": store.scalar("SELECT count(*) FROM sync_conflicts WHERE resolved_at IS NULL"),
        "day": day, "bytes_today": sum(u["bytes"] for u in usage.values()), "usage_today": usage,
        "daily_budget_bytes": node.config["sync"]["daily_budget_bytes"], "software": software(),
        "batch_records": setting(store, "batch_records"), "chunk_bytes": setting(store, "chunk_bytes"),
        # update bundles: bytes today are in usage_today["_update"]; a bundle that does not fit waits
        "update_budget_bytes": node.config["sync"]["update_budget_bytes"],
        "update_waiting": setting(store, "update_waiting"),
        "direct": direct_totals(node),
        # the hub answered "busy, retry after" (503 + Retry-After): not an error, the next try's time
        "hub_busy_until": busy and utc_iso(busy),
    }


DIRECT_STUCK_AFTER = timedelta(hours=1)   # documents waiting this long with nothing delivered: stuck
DIRECT_REFUSING_FOR = timedelta(hours=24)   # /healthz says "refusing" this long after a refusal
DIRECT_REFUSED_SHOWN = 20


def busy_until(node) -> datetime | None:
    """When the hub's last "busy, retry after" answer said to come back, if that is still ahead."""
    text = setting(node.store, "busy_until")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None and when > node.clock.now() else None


def busy_text(when: datetime) -> str:
    return f"hub busy, next try at {utc_iso(when)}"


def direct_totals(node) -> dict[str, Any] | None:
    """A node that sends its documents to the county platform itself (docs/interop.md §6): its
    target, the number of deliveries in each state, the last delivery, the oldest waiting one and
    the latest refused ones with the platform's reason; None when it does not."""
    cfg = node.config["direct"]
    if not cfg["kind"]:
        return None
    store = node.store
    counts = {s: 0 for s in ("pending", "retrying", "delivered", "refused")}
    counts.update({r["state"]: r["n"] for r in store.query(
        "SELECT state, count(*) AS n FROM direct_deliveries GROUP BY state")})
    last = store.scalar("SELECT max(delivered_at) FROM direct_deliveries WHERE state = 'delivered'")
    return {"kind": cfg["kind"], "target": cfg["target"], **counts,
            "interval_seconds": cfg["interval_seconds"], "last_round": setting(store, "direct_round"),
            "last_success": last,
            "oldest_waiting": store.scalar("SELECT min(created_at) FROM direct_deliveries"
                                           " WHERE state IN ('pending', 'retrying')"),
            "refused_records": store.query(
                "SELECT kind, record_id, version, reason, updated_at FROM direct_deliveries WHERE state = 'refused'"
                " ORDER BY updated_at DESC, seq LIMIT ?", (DIRECT_REFUSED_SHOWN,))}


def direct_problem(d: dict[str, Any] | None, now: datetime) -> str | None:
    """What /healthz says is wrong with direct sending (`d` from direct_totals), or None when it
    works: "refusing" for DIRECT_REFUSING_FOR after the platform refused a document, "stuck" when
    the sender has not finished a round for DIRECT_STUCK_AFTER and two of its intervals (the unit is
    down: nothing new is even queued), or documents have waited over DIRECT_STUCK_AFTER and nothing
    was delivered in that time. A sender that never ran once is not judged (a new box's first
    minutes): systemd shows a unit that does not start. A refusal
    stays on the sync page and in doctor; /healthz lets it go after a day, so that one resident
    the platform does not know does not hold the box down for good (and with it every update,
    which waits for /healthz to say ok)."""
    if d is None:
        return None
    refused = [r for r in d["refused_records"] if parse_iso(r["updated_at"]) > now - DIRECT_REFUSING_FOR]
    if refused:
        more = "+" if len(refused) == DIRECT_REFUSED_SHOWN else ""
        return f"refusing: {len(refused)}{more} documents refused by the platform since {refused[-1]['updated_at']}"
    silent = DIRECT_STUCK_AFTER + timedelta(seconds=2 * d["interval_seconds"])   # rounds noted every 30 min
    if d["last_round"] and parse_iso(d["last_round"]) < now - silent:
        return f"stuck: the direct sender has not finished a round since {d['last_round']} (clinic-edge-direct)"
    since = now - DIRECT_STUCK_AFTER
    waited = d["oldest_waiting"] and parse_iso(d["oldest_waiting"]) < since
    if waited and not (d["last_success"] and parse_iso(d["last_success"]) >= since):
        return (f"stuck: {d['pending'] + d['retrying']} documents waiting since {d['oldest_waiting']},"
                f" last delivered {d['last_success'] or 'never'}")
    return None


def request_now(node) -> None:
    """Ask the running sync daemon for a cycle within seconds (the web UI's "sync now")."""
    node.path(*REQUEST_FILE).touch()


def conflicts(store) -> list[dict[str, Any]]:
    rows = store.query("SELECT id, kind, record_id, local, remote, remote_version, detected_at FROM sync_conflicts"
                       " WHERE resolved_at IS NULL ORDER BY id")
    seal = store.fields
    for r in rows:
        r["local"], r["remote"] = json.loads(r["local"]), json.loads(r["remote"])
        if seal:   # kept sealed at rest (docs/field-encryption.md)
            r["local"], r["remote"] = open_json(seal, r["local"]), open_json(seal, r["remote"])
        r["fields"] = sorted(k for k in r["remote"] if k in r["local"] and k != "name_initials"   # derived
                             and r["local"].get(k) != r["remote"][k])
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
                                                                                  "updated_at", "name_initials")}
            if values.get("name") and values["name"] != local.get("name"):   # derived here, as the downlink does
                values["name_initials"] = write_keys(conn, rid, values["name"])
            sets = ", ".join(f"{k} = :{k}" for k in values)
            conn.execute(f"UPDATE residents SET {sets + ', ' if sets else ''}updated_at = :_at, version = version + 1"
                         " WHERE id = :_id", {**values, "_at": utc_iso(now), "_id": rid})
            after = dict(zip(names, conn.execute("SELECT * FROM residents WHERE id = ?", (rid,)).fetchone()))
            if store.fields:   # the hub's values went in sealed: their keyed hashes follow
                write_index(conn, store.fields, rid, store.fields.open("id_number", after["id_number"]),
                            store.fields.open("phone", after["phone"]))
            outbox.add(conn, kind="resident", record_id=rid, payload=after, at=now, version=after["version"])
            local = after
        if local:
            conn.execute("INSERT OR REPLACE INTO sync_resident_base (resident_id, hub_version, local_version)"
                         " VALUES (?,?,?)", (rid, remote_version, local["version"]))
        conn.execute("UPDATE sync_conflicts SET resolved_at = ?, resolution = ? WHERE id = ?",
                     (utc_iso(now), keep, conflict_id))
        audit.append(conn, actor=actor, action=f"resident.conflict_keep_{keep}", entity="resident", entity_id=rid,
                     at=now, after={"remote_version": remote_version})


def findings(node, now: datetime) -> list[Finding]:
    return _hub_findings(node, now) + _direct_findings(node)


def _direct_findings(node) -> list[Finding]:
    """doctor's "county platform" line, for a node that sends its documents there itself."""
    d = direct_totals(node)
    if d is None:
        return []
    where = f"{d['kind']} -> {d['target']}"
    if d["refused"]:
        return [Finding("county platform", "problem",
                        f"{d['refused']} documents refused by the county platform ({where}); "
                        f"{d['delivered']} delivered, {d['pending'] + d['retrying']} waiting",
                        "see the reasons with `clinic-edge sync direct --list --state refused`; a corrected "
                        "record is sent again as a new version")]
    if d["retrying"]:
        return [Finding("county platform", "warning",
                        f"{d['retrying']} documents waiting to be sent again ({where}); {d['delivered']} delivered",
                        "check the link to the platform; `clinic-edge sync direct --list --state retrying` says why")]
    return [Finding("county platform", "ok", f"{d['delivered']} documents delivered, {d['pending']} pending ({where})")]


def _hub_findings(node, now: datetime) -> list[Finding]:
    """doctor's "hub" line: enrolled, and does the hub answer (a short HTTPS probe, nothing sent)."""
    enrolled = node.store.one("SELECT node, hub_url FROM sync_enrollment WHERE id = 1")
    if not enrolled:
        return [Finding("hub", "warning", "this node is not enrolled with a county hub",
                        "write clinic-edge.toml onto the boot partition, or run clinic-edge enroll --hub URL --code CODE")]
    url = enrolled["hub_url"]
    ca = node.data_dir / "tls" / "county-ca.pem"   # the county root pinned at enrollment (docs/tls.md)
    context = ssl.create_default_context(cafile=str(ca)) if url.startswith("https:") and ca.exists() else None
    try:
        urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=5, context=context).close()
    except urllib.error.HTTPError:
        pass  # it answered
    except OSError as e:
        return [Finding("hub", "warning", f"{url} is not reachable: {getattr(e, 'reason', e)}",
                        "check the uplink (SIM credit, router); records wait safely in the outbox")]
    last = setting(node.store, "last_success")
    busy = busy_until(node)
    return [Finding("hub", "ok", f"{url} reachable as node {enrolled['node']}; last sync {last or 'never'}"
                    + (f"; {busy_text(busy)}" if busy else ""))]
