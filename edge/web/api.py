"""JSON API under /api/v1/ for what the pages do (docs/api.md). The same login session as the
pages; every POST carries the CSRF token in the X-CSRFToken header."""
from __future__ import annotations

import json

from flask import Blueprint, abort, jsonify, request
from flask_babel import gettext
from flask_login import current_user

from edge.core import measuring, residents, vitals
from edge.core.accounts import N_
from edge.core.errors import NotFound, ValidationError
from edge.core.resident_search import search
from . import context
from .workbench import local_time, unit_text

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _now():
    return context.node().clock.now()


def _body() -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    if not request.is_json:
        abort(400, gettext("Send the data as JSON (Content-Type: application/json)."))
    try:
        data = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):      # not JSON, not UTF-8, or nested too deep
        abort(400, gettext("The body is not valid JSON."))
    if not isinstance(data, dict):
        abort(400, gettext("Send a JSON object."))
    return data


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(N_("This must be text."), field=key)
    return value


def _ids(data: dict, key: str = "reading_ids") -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or len(value) > 1000 or not all(isinstance(v, str) for v in value):
        raise ValidationError(N_("This must be a list of reading ids."), field=key)
    return value


def _resident_fields(data: dict) -> dict:
    """Every resident field is text, a number or a tick; a version is a whole number."""
    for key in residents.FIELDS:
        if data.get(key) is not None and not isinstance(data[key], (str, int, bool)):
            raise ValidationError(N_("This must be text."), field=key)
    if data.get("version") is not None and (type(data["version"]) is not int):
        raise ValidationError(N_("The version must be a whole number."), field="version")
    return data


def _invalid(e: ValidationError):
    if isinstance(e, residents.FormInvalid):
        return jsonify(error="invalid", errors={k: gettext(v) for k, v in e.errors.items()},
                       duplicate_of=e.duplicate_of), 422
    return jsonify(error="invalid", errors={e.field or "_": gettext(str(e))}), 422


@bp.get("/residents")
def resident_search():
    limit = max(1, min(request.args.get("limit", 20, type=int), 100))
    return jsonify(search(context.store(), request.args.get("q", ""), limit=limit))


@bp.post("/residents")
def resident_create():
    try:
        rid = residents.create(context.store(), _resident_fields(_body()), division_code=context.node().config["node"]["division_code"],
                               now=_now(), actor=current_user.username, today=context.today())
    except ValidationError as e:
        return _invalid(e)
    return jsonify(residents.get(context.store(), rid)), 201


@bp.get("/residents/<resident_id>")
def resident_get(resident_id: str):
    r = residents.get(context.store(), resident_id)
    if r is None:
        abort(404)
    return jsonify({**r, "latest": vitals.latest(context.store(), resident_id)})


@bp.put("/residents/<resident_id>")
def resident_update(resident_id: str):
    data = _body()
    try:
        _resident_fields(data)
        residents.update(context.store(), resident_id, data, now=_now(), actor=current_user.username,
                         version=data.get("version"), today=context.today())
    except NotFound:
        abort(404)
    except ValidationError as e:
        return _invalid(e)
    return jsonify(residents.get(context.store(), resident_id))


@bp.post("/residents/<resident_id>/void")
def resident_void(resident_id: str):
    try:
        residents.void(context.store(), resident_id, _text(_body(), "reason"), now=_now(),
                       actor=current_user.username)
    except NotFound:
        abort(404)
    except ValidationError as e:
        return _invalid(e)
    return jsonify(residents.get(context.store(), resident_id))


@bp.get("/residents/<resident_id>/readings")
def resident_live(resident_id: str):
    """New readings since `after` (a seq from an earlier answer), for the live resident page."""
    store = context.store()
    if residents.get(store, resident_id) is None:
        abort(404)
    after = min(max(0, request.args.get("after", 0, type=int)), 2**63 - 1)   # SQLite integers are 64-bit
    rows = vitals.recent(store, resident_id, limit=100, after_seq=after)
    statuses = {"valid": gettext("valid"), "rejected": gettext("rejected"), "voided": gettext("voided")}
    for r in rows:
        r["local_time"], r["unit_text"] = local_time(r["effective_time"]), unit_text(r["unit"])
        r["status_text"] = statuses.get(r["status"], r["status"])
    latest = vitals.latest(store, resident_id)
    for v in latest.values():
        v["local_time"] = local_time(v["effective_time"])
    return jsonify(readings=rows, last_seq=max([after] + [r["seq"] for r in rows]),
                   latest=latest, measuring=measuring.current(store, now=_now()))


@bp.get("/measuring")
def measuring_state():
    return jsonify(measuring=measuring.current(context.store(), now=_now()))


@bp.post("/measuring")
def measuring_start():
    data = _body()
    try:
        minutes = data.get("minutes") or context.node().config["web"]["measuring_minutes"]
        if type(minutes) is not int:
            raise ValidationError(N_("The minutes must be a whole number."), field="minutes")
        session = measuring.start(context.store(), _text(data, "resident_id"), minutes=minutes,
                                  now=_now(), actor=current_user.username, switch=bool(data.get("switch")))
    except NotFound:
        abort(404)
    except measuring.SessionBusy as e:
        return jsonify(error="busy", message=gettext(str(e)), measuring=e.session), 409
    except ValidationError as e:
        return _invalid(e)
    return jsonify(measuring=session), 201


@bp.delete("/measuring")
def measuring_stop():
    measuring.stop(context.store(), now=_now(), actor=current_user.username)
    return jsonify(measuring=None)


@bp.get("/inbox")
def inbox():
    return jsonify(measuring.inbox(context.store()))


@bp.post("/inbox/assign")
def inbox_assign():
    data = _body()
    try:
        n = measuring.assign(context.store(), _ids(data), _text(data, "resident_id"),
                             now=_now(), actor=current_user.username)
    except NotFound:
        abort(404)
    except ValidationError as e:
        return _invalid(e)
    return jsonify(assigned=n)


@bp.post("/inbox/dismiss")
def inbox_dismiss():
    data = _body()
    try:
        n = measuring.dismiss(context.store(), _ids(data), _text(data, "reason"),
                              now=_now(), actor=current_user.username)
    except NotFound:
        abort(404)
    except ValidationError as e:
        return _invalid(e)
    return jsonify(dismissed=n)


@bp.post("/readings/<reading_id>/void")
def reading_void(reading_id: str):
    try:
        measuring.void_reading(context.store(), reading_id, _text(_body(), "reason"), now=_now(),
                               actor=current_user.username)
    except NotFound:
        abort(404)
    except ValidationError as e:
        return _invalid(e)
    return jsonify(voided=reading_id)
