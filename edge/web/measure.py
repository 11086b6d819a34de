"""Measuring a patient: "measuring now", the readings inbox (assign / dismiss), voiding a reading,
binding a wearable."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user

from edge.core import codes, devices, measuring
from edge.core.errors import NotFound, ValidationError
from edge.core.resident_search import search
from . import context

bp = Blueprint("measure", __name__)


def _now():
    return context.node().clock.now()


def _back(resident_id: str):
    return redirect(url_for("residents.page", resident_id=resident_id), 303)


@bp.post("/residents/<resident_id>/measuring")
def start(resident_id: str):
    try:
        minutes = int(request.form.get("minutes") or context.node().config["web"]["measuring_minutes"])
        measuring.start(context.store(), resident_id, minutes=minutes, now=_now(), actor=current_user.username,
                        switch=request.form.get("switch") == "1")
    except NotFound:
        abort(404)
    except measuring.SessionBusy:       # never take the devices from another resident without asking
        return redirect(url_for("residents.page", resident_id=resident_id, switch=1), 303)
    except (ValueError, ValidationError):
        flash(gettext("A measuring session lasts 1 to 120 minutes."), "error")
    return _back(resident_id)


@bp.post("/measuring/stop")
def stop():
    session = measuring.current(context.store(), now=_now())
    measuring.stop(context.store(), now=_now(), actor=current_user.username)
    target = request.form.get("resident_id") or (session or {}).get("resident_id")
    return _back(target) if target else redirect(url_for("residents.home"), 303)


@bp.get("/inbox")
def inbox():
    groups = measuring.inbox(context.store())
    for g in groups:
        for r in g["readings"]:
            c = codes.lookup(r["code"])
            r["label_zh"], r["label_en"] = (c.display_zh, c.display_en) if c else (r["code"], r["code"])
    return render_template("inbox.html", groups=groups)


@bp.post("/inbox/assign")
def assign():
    ids = request.form.getlist("reading_id")
    resident_id = request.form.get("resident_id", "").strip()
    if not resident_id and request.form.get("q"):
        matches = search(context.store(), request.form["q"], limit=2)
        if len(matches) == 1:
            resident_id = matches[0]["id"]
        else:
            flash(gettext("No single resident matches; pick one from the list."), "error")
            return redirect(url_for("measure.inbox"), 303)
    try:
        n = measuring.assign(context.store(), ids, resident_id, now=_now(), actor=current_user.username)
    except (ValidationError, NotFound) as e:
        flash(gettext(str(e)), "error")
        return redirect(url_for("measure.inbox"), 303)
    name = context.store().scalar("SELECT name FROM residents WHERE id = ?", (resident_id,))
    flash(gettext("%(n)d readings assigned to %(name)s.", n=n, name=name), "ok")
    return redirect(url_for("measure.inbox"), 303)


@bp.post("/inbox/dismiss")
def dismiss():
    try:
        ids = [i for v in request.form.getlist("reading_id") for i in v.split(",") if i]   # a group: "id1,id2"
        n = measuring.dismiss(context.store(), ids, request.form.get("reason", ""), now=_now(),
                              actor=current_user.username)
    except (ValidationError, NotFound) as e:
        flash(gettext(str(e)), "error")
    else:
        flash(gettext("%(n)d readings dismissed.", n=n), "ok")
    return redirect(url_for("measure.inbox"), 303)


@bp.post("/readings/<reading_id>/void")
def void_reading(reading_id: str):
    resident_id = context.store().scalar("SELECT resident_id FROM readings WHERE id = ?", (reading_id,))
    try:
        measuring.void_reading(context.store(), reading_id, request.form.get("reason", ""), now=_now(),
                               actor=current_user.username)
    except NotFound:
        abort(404)
    except ValidationError as e:
        flash(gettext(str(e)), "error")
    else:
        flash(gettext("The reading was voided."), "ok")
    return _back(resident_id) if resident_id else redirect(url_for("measure.inbox"), 303)


@bp.post("/residents/<resident_id>/devices")
def bind(resident_id: str):
    device_id = request.form.get("device_id", "")
    unbind = request.form.get("unbind") == "1"
    device = devices.get(context.store(), device_id)
    if device is None:
        flash(gettext("Choose a device."), "error")
        return _back(resident_id)
    if unbind and device["resident_id"] != resident_id:
        abort(400)
    if not unbind and device["resident_id"]:
        flash(gettext("This device is already bound to another resident."), "error")
        return _back(resident_id)
    devices.bind(context.store(), device_id, None if unbind else resident_id, now=_now(),
                 actor=current_user.username)
    flash(gettext("Device unbound.") if unbind else gettext("Device bound: its readings now attach to this "
                                                             "resident by themselves."), "ok")
    return _back(resident_id)
