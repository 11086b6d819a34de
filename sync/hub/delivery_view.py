"""County IT's page of deliveries to the county platform: /deliveries, behind the hub's log-in
(any role may look). Per profile the count in each state, then the refused and retrying
documents with the platform's reason (docs/interop.md §5)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_login import current_user, login_required

from . import forwarding

bp = Blueprint("deliveries", __name__)
SHOWN = 200


@bp.get("/deliveries")
@login_required
def deliveries():
    hub, now = current_app.extensions["clinic_edge_hub"]
    store = hub.store
    problems = forwarding.listing(store, state="refused", limit=SHOWN) + \
        forwarding.listing(store, state="retrying", limit=SHOWN)
    return render_template("deliveries.html", profiles=forwarding.profiles(store), totals=forwarding.totals(store),
                           states=forwarding.STATES, problems=problems, user=current_user.user)
