"""Follow-up forms in the browser: open pre-filled, save (a version), correct, print as the paper form.

Routes (blueprint `followup`):
  GET  /followup/<resident_id>                       the resident's follow-ups, buttons for a new one
  GET  /followup/<resident_id>/<form>/new            the form, pre-filled (devices, last visit, rules)
  POST /followup/<resident_id>/<form>/new            validate; save or show a message per field
  GET  /followups/<id>[?version=n]                   paper-form layout (print stylesheet), versions, audit
  GET|POST /followups/<id>/correct                   a correction = a new version, with a reason
  POST /followups/<id>/void                          void (never delete) with a reason
"""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for

from flask_babel import gettext

from edge.core import audit, measuring
from edge.core.errors import CoreError, StoreFull
from edge.core.field_seal import open_record
from edge.core.followup import fields, measurements, prefill, records, rules
from edge.core.reading import utc_iso
from edge.core.followup.validation import validate
from edge.reports import source
from . import context, disk_full

bp = Blueprint("followup", __name__)
bp.teardown_app_request(context.close_store)


def lang() -> str:
    if "babel" not in current_app.extensions:
        return "zh"
    from flask_babel import get_locale
    loc = get_locale()
    return "en" if loc is not None and str(loc).startswith("en") else "zh"


def actor() -> str:
    if getattr(current_app, "login_manager", None) is None:
        return "web"
    from flask_login import current_user
    return getattr(current_user, "username", None) or str(current_user.get_id())


@bp.before_request
def require_login():
    """Every page here needs a signed-in user (the workbench's Flask-Login, when installed)."""
    lm = getattr(current_app, "login_manager", None)
    if lm is None:
        return None
    from flask_login import current_user
    if not current_user.is_authenticated:
        return lm.unauthorized()
    return None


@bp.context_processor
def template_helpers() -> dict[str, Any]:
    """`lang` (form labels and code lists come in both languages from fields.py) and the field
    definitions; `_`/`csrf_token` stand-ins only if the app runs without Babel/CSRF."""
    out: dict[str, Any] = {"lang": lang(), "fields": fields, "device_fields": records.DEVICE_FIELDS,
                           "action_label": action_label}
    if "babel" not in current_app.extensions:
        out["_"] = lambda s, **kw: (s % kw) if kw else s
    if "csrf" not in current_app.extensions:
        out["csrf_token"] = lambda: ""
    return out


def N_(message: str) -> str:
    return message


# what the audit trail shows for an action (the log keeps the machine name)
AUDIT_ACTIONS = {"followup.create": N_("Follow-up saved"), "followup.correct": N_("Correction saved"),
                 "followup.void": N_("Follow-up voided")}


def action_label(action: str) -> str:
    label = AUDIT_ACTIONS.get(action)
    return gettext(label) if label else action


def today() -> date:
    return context.today()


def tz() -> str:
    return context.node().config["node"]["timezone"]


def resident_or_404(resident_id: str) -> dict:
    r = context.store().one("SELECT id, name, sex, birth_date, health_record_no, phone FROM residents"
                            " WHERE id = ? AND voided_at IS NULL", (resident_id,))
    if r is None:
        abort(404)
    return open_record(context.store().conn, r)


def form_or_404(form: str) -> str:
    if form not in fields.FORMS:
        abort(404)
    return form


@bp.get("/followup/<resident_id>")
def resident_followups(resident_id: str):
    r = resident_or_404(resident_id)
    rows = context.store().query("SELECT id, form, version, visit_date, visit_mode, sbp, dbp, fbg, classification,"
                                 " next_visit_date, urgent, voided_at FROM followups WHERE resident_id = ?"
                                 " ORDER BY visit_date DESC, created_at DESC LIMIT 200", (resident_id,))
    managed = source.managed_since(context.store(), resident_id).get(resident_id, {})
    return render_template("followup/list.html", resident=r, rows=rows, managed=managed)


def _form_inputs(raw) -> dict[str, Any]:
    """Submitted inputs as the template reads them (lists for multi-selects)."""
    out: dict[str, Any] = {}
    for k in raw:
        vals = raw.getlist(k)
        out[k] = vals if k in ("symptoms", "danger_signs") else vals[-1]
    return out


def _referral_pending(resident_id: str, form: str) -> bool:
    """The last visit on this form was an urgent referral: this contact records whether it was reached."""
    last = records.last_visit(context.store(), resident_id, form)
    return bool(last and last["urgent"])


def _render_form(resident, form, values, *, errors=None, pre=None, sources=None, correcting=None,
                 status=200, session_id=None):
    age = rules.age_on(date.fromisoformat(resident["birth_date"]), today()) if resident["birth_date"] else None
    target = rules.bp_target(age)
    return render_template("followup/form.html", resident=resident, form=form, values=values,
                           errors=errors or {}, pre=pre, sources=sources or {}, age=age, target=target,
                           correcting=correcting, title=fields.FORM_TITLES[form],
                           field_list=fields.fields_for(form),
                           referral_pending=not correcting and _referral_pending(resident["id"], form),
                           session_id=session_id or (pre.session["id"] if pre and pre.session else None)), status


@bp.get("/followup/<resident_id>/<form>/new")
def new(resident_id: str, form: str):
    resident, form = resident_or_404(resident_id), form_or_404(form)
    pre = prefill.build(context.store(), resident_id=resident_id, form=form, today=today(), tz=tz())
    return _render_form(resident, form, prefill.flat(pre.values), pre=pre, sources=pre.sources)


@bp.get("/followup/<resident_id>/<form>/suggest")
def suggest(resident_id: str, form: str):
    """The rules' answer for the values typed so far (the page asks while the doctor types, so the
    alert and suggestions come from the same rules the save uses): alerts, classification, next step
    and date. Values that do not parse are left out, as the save would refuse them."""
    resident, form = resident_or_404(resident_id), form_or_404(form)
    values = _readable(form, request.args)
    visit = date.fromisoformat(values.get("visit_date") or today().isoformat())
    previous = records.last_visit(context.store(), resident_id, form)
    sugg = rules.suggestions(form, values, age=_age(resident, visit.isoformat()),
                             previous=previous["values"].get("classification") if previous else None,
                             visit_date=visit)
    return jsonify(alerts=[{"code": a.code, "text": a.text(lang())} for a in sugg["alerts"]],
                   classification=sugg["classification"], next_step=sugg["next_step"],
                   next_visit_date=sugg["next_visit_date"], bmi=sugg.get("bmi"))


@bp.get("/followup/<resident_id>/<form>/session/<int:session_id>")
def session_readings(resident_id: str, form: str, session_id: int):
    """The visit session's BP measurements so far, for the open form (a reading taken after the form
    was opened appears on it), and whether the session still takes readings."""
    resident_or_404(resident_id), form_or_404(form)
    store = context.store()
    s = store.one("SELECT resident_id, ended_at, expires_at FROM measuring_sessions WHERE id = ?", (session_id,))
    if s is None or s["resident_id"] != resident_id:
        abort(404)
    from .workbench import local_time
    bps = measurements.bp_measurements(measuring.session_measurements(store, session_id))
    now = utc_iso(context.node().clock.now())
    return jsonify(bp=[{**b, "local_time": local_time(b["time"], "%H:%M:%S")} for b in bps],
                   chosen=[b["key"] for b in measurements.default_bp(bps)],
                   open=s["ended_at"] is None and s["expires_at"] > now)


def _readable(form: str, raw) -> dict[str, Any]:
    v = validate(form, raw, today=today(), lang=lang())
    out = {k: x for k, x in v.values.items() if k not in v.errors}
    if raw.get("temperature"):
        try:
            out["temperature"] = float(raw["temperature"])
        except ValueError:
            pass
    return out


def _sources(raw) -> dict[str, object]:
    """src_<field>: one reading id, or the comma-separated ids of the readings averaged."""
    out: dict[str, object] = {}
    for name in records.DEVICE_FIELDS:
        ids = [i for i in (raw.get(f"src_{name}") or "").split(",") if i.strip()]
        if ids:
            out[name] = ids[0] if len(ids) == 1 else ids
    return out


def _session_id(raw) -> int | None:
    text = (raw.get("session_id") or "").strip()
    return int(text) if text.isdigit() else None


@bp.post("/followup/<resident_id>/<form>/new")
def create(resident_id: str, form: str):
    resident, form = resident_or_404(resident_id), form_or_404(form)
    v = validate(form, request.form, today=today(), lang=lang(),
                 referral_pending=_referral_pending(resident_id, form))
    sources = _sources(request.form)
    if not v.ok:
        return _render_form(resident, form, _form_inputs(request.form), errors=v.errors, sources=sources,
                            status=422, session_id=_session_id(request.form))
    if request.form.get("temperature"):
        v.values["temperature"] = float(request.form["temperature"])
    previous = records.last_visit(context.store(), resident_id, form)
    sugg = rules.suggestions(form, v.values, age=_age(resident, v.values["visit_date"]),
                             previous=previous["values"].get("classification") if previous else None,
                             visit_date=date.fromisoformat(v.values["visit_date"]))
    sugg["alerts"] = [a.code for a in sugg["alerts"]]
    try:
        saved = records.save(context.store(), resident_id=resident_id, form=form, values=v.values, actor=actor(),
                             at=context.node().clock.now(), sources=sources, suggestions=sugg,
                             session_id=_session_id(request.form))
    except StoreFull:   # keep what was typed on the screen
        disk_full.notice()
        return _render_form(resident, form, _form_inputs(request.form), sources=sources, status=disk_full.STATUS)
    return redirect(url_for("followup.show", followup_id=saved.id, saved=1))


def _age(resident: dict, visit_date: str) -> int | None:
    if not resident["birth_date"]:
        return None
    return rules.age_on(date.fromisoformat(resident["birth_date"]), date.fromisoformat(visit_date))


@bp.get("/followups/<followup_id>")
def show(followup_id: str):
    version = request.args.get("version", type=int)
    f = records.get(context.store(), followup_id, version)
    if f is None:
        abort(404)
    resident = resident_or_404(f["resident_id"])
    history = audit.history(context.store().conn, "followup", followup_id)
    signer = context.store().one("SELECT display_name FROM users WHERE username = ?", (f["saved_by"],))
    f["signed_by"] = (signer or {}).get("display_name") or f["saved_by"]
    used = records.readings_used(context.store(), followup_id, f["shown_version"])
    return render_template("followup/show.html", f=f, resident=resident, form=f["form"], used=used,
                           v=f["values"], title=fields.FORM_TITLES[f["form"]],
                           versions=records.versions(context.store(), followup_id), history=history,
                           saved=request.args.get("saved"))


@bp.route("/followups/<followup_id>/correct", methods=["GET", "POST"])
def correct(followup_id: str):
    f = records.get(context.store(), followup_id)
    if f is None or f["voided_at"]:
        abort(404)
    resident, form = resident_or_404(f["resident_id"]), f["form"]
    if request.method == "GET":
        return _render_form(resident, form, prefill.flat(f["values"]), sources=f["sources"], correcting=f)
    v = validate(form, request.form, today=today(), lang=lang())
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        v.errors["reason"] = gettext("Give the reason for the correction.")
    if not v.ok:
        return _render_form(resident, form, _form_inputs(request.form), errors=v.errors,
                            sources=_sources(request.form), correcting=f, status=422)
    try:
        records.save(context.store(), resident_id=f["resident_id"], form=form, values=v.values, actor=actor(),
                     at=context.node().clock.now(), sources=_sources(request.form), followup_id=followup_id,
                     reason=reason)
    except StoreFull:
        disk_full.notice()
        return _render_form(resident, form, _form_inputs(request.form), sources=_sources(request.form),
                            correcting=f, status=disk_full.STATUS)
    except CoreError as e:
        return _render_form(resident, form, _form_inputs(request.form), errors={"reason": str(e)},
                            correcting=f, status=422)
    return redirect(url_for("followup.show", followup_id=followup_id, saved=1))


@bp.post("/followups/<followup_id>/void")
def void(followup_id: str):
    f = records.get(context.store(), followup_id)
    if f is None:
        abort(404)
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        flash(gettext("Give the reason for voiding."), "error")
    elif not f["voided_at"]:
        records.void(context.store(), followup_id, reason=reason, actor=actor(), at=context.node().clock.now())
    return redirect(url_for("followup.show", followup_id=followup_id), 303)
