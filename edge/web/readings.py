"""The page listing recent readings of every device (the doctor's workbench is in residents.py)."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from edge.core import codes
from edge.core.ingest import latest
from . import context

bp = Blueprint("readings", __name__)


@bp.get("/readings")
def index():
    rows = latest(context.store(), limit=_limit())
    for r in rows:
        c = codes.lookup(r["code"])
        r["label_zh"], r["label_en"] = (c.display_zh, c.display_en) if c else (r["code"], r["code"])
    return render_template("readings.html", readings=rows)


@bp.get("/api/v1/readings")
def api_readings():
    return jsonify(latest(context.store(), limit=_limit()))


def _limit() -> int:
    """?limit=N, 1-1000 (100 when missing or not a number)."""
    return max(1, min(request.args.get("limit", 100, type=int), 1000))
