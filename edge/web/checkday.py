"""The check day (体检日) in the browser: registration, each station's list and call buttons.

Routes (blueprint `checkday`):
  GET  /checkday                         stations, their devices, registration form
  POST /checkday/register                register by ID number or slip (resident id)
  POST /checkday/device/<station>        choose the station's device
  GET  /checkday/<station>               the station list: waiting, being measured, done
  GET  /checkday/slip/<resident_id>      the printed slip: name, queue number, QR code of the resident id
  POST /checkday/<station>/call          call a resident (BP: with the arm); the device measures them.
                                         `resident_id`, or `who` as typed or scanned (ID number or slip)
  POST /checkday/<station>/done          the resident leaves the station
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from edge.core import devices
from edge.core.errors import CoreError
from edge.core.healthcheck import checkday
from . import context, slip
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


@bp.get("/checkday/slip/<resident_id>")
def slip_page(resident_id: str):
    """The slip registration prints: the QR code carries the resident id the call fields accept."""
    store = context.store()
    visit = store.one("SELECT v.seq, v.day, r.id, r.name, r.id_number FROM checkday_visits v JOIN residents r"
                      " ON r.id = v.resident_id WHERE v.day = ? AND v.resident_id = ?",
                      (context.today().isoformat(), resident_id))
    if visit is None:
        abort(404)
    return render_template("healthcheck/slip.html", v=visit, qr=slip.qr_svg(visit["id"]), lang=lang(),
                           stations=[s for s in checkday.STATIONS if s[0] != "registration"])


def _called(store) -> str:
    """The resident a call names: the list's button (resident_id) or the scan field (who)."""
    who = (request.form.get("who") or "").strip()
    return checkday.find(store, who)["id"] if who else request.form.get("resident_id", "")


@bp.post("/checkday/<station>/call")
def call(station: str):
    station = _station_or_404(station)
    resident_id = ""
    try:
        resident_id = _called(context.store())
        checkday.call(context.store(), context.today(), station, resident_id, now=_now(),
                      actor=actor(), arm=request.form.get("arm") or None)
    except CoreError as e:
        flash(str(e), "error")
    if station == "doctor" and resident_id:
        return redirect(url_for("healthcheck.new", resident_id=resident_id), 303)
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
