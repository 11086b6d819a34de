"""The doctor's view of the link to the county (blueprint `sync_page`): is the clinic up to date,
what was refused and why, residents changed on both sides; "sync now". Imports edge.core only:
what it shows and does comes from sync's status contribution (`sync.client.status`, found through
edge/core/status.py; a node without the sync client has no sync page), and the button leaves a
request file the sync daemon picks up within seconds.

  GET  /sync                       status, quarantined records, conflicts
  POST /sync/now                   ask the sync daemon for a cycle now
  POST /sync/conflicts/<id>        keep=local|hub
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from edge.core import status
from . import context
from .followup import actor, require_login

bp = Blueprint("sync_page", __name__)
bp.before_request(require_login)
bp.teardown_app_request(context.close_store)


BADGE_MOST = 999    # the header counts this many waiting records at most; /sync gives the exact number


@bp.app_context_processor
def sync_badge():
    """For the header: records waiting to go to the county ("999+" beyond BADGE_MOST: counting a
    backlog of 170,000 took ~35 ms of every page) and open conflicts."""
    try:
        s = context.store()
        waiting = s.scalar("SELECT count(*) FROM (SELECT 1 FROM outbox WHERE acked_at IS NULL"
                           " AND quarantined_at IS NULL LIMIT ?)", (BADGE_MOST + 1,))
        waiting = f"{BADGE_MOST}+" if waiting > BADGE_MOST else waiting
        conflicts = s.scalar("SELECT count(*) FROM sync_conflicts WHERE resolved_at IS NULL")
    except Exception:  # noqa: BLE001 - a header badge never breaks a page
        return {}
    return {"sync_waiting": waiting, "sync_conflicts": conflicts}


def sync_view():
    """Sync's status contribution; 404 on a node where the sync client is not installed."""
    return status.contribution("sync") or abort(404)


@bp.get("/sync")
def index():
    node = context.node()
    view = sync_view()
    return render_template("sync.html", s=view.report(node), conflicts=view.conflicts(node.store))


@bp.post("/sync/now")
def now():
    view = sync_view()
    view.request_now(context.node())
    busy = view.report(context.node()).get("hub_busy_until")
    if busy:     # the daemon keeps the request until then (sync.client.daemon)
        flash(gettext("Sync requested: the county hub is busy, it runs after %(t)s.", t=current_app.jinja_env.filters["localtime"](busy)), "info")
    else:
        flash(gettext("Sync requested."), "info")
    return redirect(url_for("sync_page.index"), 303)


@bp.post("/sync/conflicts/<int:conflict_id>")
def resolve(conflict_id: int):
    keep = request.form.get("keep")
    if keep not in ("local", "hub"):
        abort(400)
    sync_view().resolve(context.store(), conflict_id, keep, actor=actor(), now=context.node().clock.now())
    flash(gettext("Resolved."), "info")
    return redirect(url_for("sync_page.index"), 303)
