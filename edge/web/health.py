"""/healthz: what county IT, systemd and the update watchdog ask: is this node working?"""
from __future__ import annotations

from flask import Blueprint, jsonify

from edge.core.errors import CoreError
from edge.core import disk, outbox, release, status
from . import context

bp = Blueprint("health", __name__)
bp.teardown_app_request(context.close_store)


@bp.get("/healthz")
def healthz():
    body: dict = {"store": "ok"}
    try:
        s = context.store()
        s.scalar("SELECT count(*) FROM _migrations")
        # rowid follows arrival: the last row is the last received, without scanning the table
        body["last_reading_time"] = s.scalar("SELECT receive_time FROM readings ORDER BY rowid DESC LIMIT 1")
        body["backlog"] = outbox.backlog(s.conn)
    except (CoreError, Exception) as e:  # the page must answer even when the store cannot
        body["store"] = f"error: {e}"
    ingest = context.node().read_status("ingest") or {}
    body["broker_connected"] = bool(ingest.get("running") and ingest.get("mqtt_connected"))
    body["ingest_running"] = bool(ingest.get("running"))
    # a full data partition: nothing can be saved, however well the rest runs (docs/disk-full.md)
    data = context.node().config.store_path.parent
    short = disk.problem(data)
    body["disk"] = f"full: {short}" if short else "ok"
    free = disk.free_bytes(data)
    body["disk_free_mb"] = None if free is None else round(free / 1e6, 1)
    body["direct"] = _direct(body)
    # the checks that fail, by name: the update watchdog holds against a new release only those that
    # did not already fail before it (edge.appliance.update.OUTSIDE_CHECKS)
    body["failing"] = [k for k in ("store", "disk", "direct") if body[k] not in (None, "ok")]
    body["ok"] = not body["failing"]
    body["version"] = release.running_version()  # the update watchdog waits for the new version to answer
    return jsonify(body), (200 if body["ok"] else 503)


def _direct(body: dict) -> str | None:
    """Sending to the county platform itself ([direct], docs/interop.md §6), judged by the sync
    contribution that `sync status` reads too: None when not configured, "ok", or what is wrong
    ("refusing: ...", "stuck: ..."); its counts go in body["direct_deliveries"]."""
    sync = status.contribution("sync")
    if sync is None or body["store"] != "ok":
        return None
    node = context.node()
    try:
        totals = sync.direct_totals(node)
    except Exception as e:  # noqa: BLE001 - /healthz answers whatever fails
        return f"error: {e}"
    if totals is None:
        return None
    body["direct_deliveries"] = {k: totals[k] for k in ("kind", "target", "pending", "retrying", "delivered",
                                                        "refused", "last_success", "oldest_waiting",
                                                        "last_round")}
    return sync.direct_problem(totals, node.clock.now()) or "ok"
