"""The check day (体检日) in the browser: registration, each station's list and call buttons.

Routes (blueprint `checkday`):
  GET  /checkday                         stations, their devices, registration form
  POST /checkday/register                register by ID number or slip (resident id)
  POST /checkday/device/<station>        choose the station's device
  GET  /checkday/<station>               the station list: waiting, being measured, done
  POST /checkday/<station>/call          call a resident (BP: with the arm); the device measures them
  POST /checkday/<station>/done          the resident leaves the station
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from edge.core import devices
from edge.core.errors import CoreError
from edge.core.healthcheck import checkday
from . import context
from .followup import actor, lang, require_login

bp = Blueprint("checkday", __name__)
bp.teardown_app_request(context.close_store)
bp.before_request(require_login)


def _station_or_404(station: str) -> str:
    if station not in checkday.STATION_NAMES:
        abort(404)
    return station


def _now():
    return context.node().clock.now()


@bp.get("/checkday")
def index():
    store = context.store()
    stations = [(s, zh, en, m, checkday.device_of(store, s) if m else None) for s, zh, en, m in checkday.STATIONS]
    return render_template("healthcheck/checkday.html", stations=stations, lang=lang(),
                           devices=devices.active(store),
                           registered=checkday.board(store, context.today(), "doctor"))


@bp.post("/checkday/register")
def register():
    try:
        r = checkday.register(context.store(), context.today(), request.form.get("who", ""), now=_now(),
                              actor=actor())
        flash(f"{r['name']} · {r['seq']}", "notice")
    except CoreError as e:
        flash(str(e), "error")
    return redirect(url_for("checkday.index"), 303)


@bp.post("/checkday/device/<station>")
def set_device(station: str):
    try:
        checkday.set_device(context.store(), _station_or_404(station), request.form.get("device_id"), now=_now())
    except CoreError as e:
        flash(str(e), "error")
    return redirect(url_for("checkday.index"), 303)


@bp.get("/checkday/<station>")
def station(station: str):
    station = _station_or_404(station)
    info = next(s for s in checkday.STATIONS if s[0] == station)
    return render_template("healthcheck/station.html", station=station, info=info, lang=lang(),
                           board=checkday.board(context.store(), context.today(), station),
                           device=checkday.device_of(context.store(), station) if info[3] else None)


@bp.post("/checkday/<station>/call")
def call(station: str):
    station = _station_or_404(station)
    try:
        checkday.call(context.store(), context.today(), station, request.form.get("resident_id", ""), now=_now(),
                      actor=actor(), arm=request.form.get("arm") or None)
    except CoreError as e:
        flash(str(e), "error")
    if station == "doctor" and request.form.get("resident_id"):
        return redirect(url_for("healthcheck.new", resident_id=request.form["resident_id"]), 303)
    return redirect(url_for("checkday.station", station=station), 303)


@bp.post("/checkday/<station>/done")
def done(station: str):
    station = _station_or_404(station)
    try:
        checkday.done(context.store(), context.today(), station, request.form.get("resident_id", ""), now=_now(),
                      actor=actor())
    except CoreError as e:
        flash(str(e), "error")
    return redirect(url_for("checkday.station", station=station), 303)
