"""The page listing recent readings of every device (the doctor's workbench is in residents.py)."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from edge.core import codes
from edge.core.ingest import latest
from . import context

bp = Blueprint("readings", __name__)


@bp.get("/readings")
def index():
    rows = latest(context.store(), limit=min(int(request.args.get("limit", 100)), 1000))
    for r in rows:
        c = codes.lookup(r["code"])
        r["label_zh"], r["label_en"] = (c.display_zh, c.display_en) if c else (r["code"], r["code"])
    return render_template("readings.html", readings=rows)


@bp.get("/api/v1/readings")
def api_readings():
    limit = min(int(request.args.get("limit", 100)), 1000)
    return jsonify(latest(context.store(), limit=limit))
