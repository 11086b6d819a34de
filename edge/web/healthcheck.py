"""The 健康体检表 in the browser: open pre-filled by the devices, save (a version), show with sources.

Routes (blueprint `healthcheck`):
  GET  /healthcheck/<resident_id>/new      the form, pre-filled from the resident's readings today
  POST /healthcheck/<resident_id>/new      validate; save or show a message per field
  GET  /healthchecks/<id>[?version=n]      the saved record, each device value with its reading
  GET  /healthchecks/<id>/print[?version=n]  the paper form's layout on A4, for printing
  GET  /elderly[?year=]                    老年人健康管理率 and the residents 65+ not checked this year
"""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from edge.core import codes
from edge.core.errors import StoreFull
from edge.core.followup.rules import age_on
from edge.core.healthcheck import carry, fields, prefill, records, rows, selfcare
from edge.core.healthcheck.validation import validate
from edge.reports import elderly
from . import context, disk_full
from .followup import actor, lang, require_login, resident_or_404

bp = Blueprint("healthcheck", __name__)
bp.teardown_app_request(context.close_store)
bp.before_request(require_login)
MULTI = {f.name for f in fields.FIELDS if f.kind == "codes"}
ROW_BUTTONS = ("row_add_", "row_remove_", "row_confirm_")         # templates/healthcheck/_rows.html


@bp.context_processor
def template_helpers() -> dict[str, Any]:
    from .workbench import local_time
    out: dict[str, Any] = {"lang": lang(), "fields": fields, "selfcare": selfcare, "hc_rows": rows,
                           "hc_carry": carry, "device_fields": records.DEVICE_FIELDS, "local_time": local_time,
                           "converted": records.CONVERTED, "code_label": _code_label}
    if "babel" not in current_app.extensions:
        out["_"] = lambda s, **kw: (s % kw) if kw else s
    if "csrf" not in current_app.extensions:
        out["csrf_token"] = lambda: ""
    return out


def _code_label(loinc: str) -> str:
    """A reading's code as the doctor reads it (尿素氮 beside the urea it filled)."""
    c = codes.lookup(loinc)
    return loinc if c is None else (c.display_zh if lang() == "zh" else c.display_en)


def _age(resident: dict, day: date) -> int | None:
    return age_on(date.fromisoformat(resident["birth_date"]), day) if resident["birth_date"] else None


def _inputs(raw) -> dict[str, Any]:
    return {k: (raw.getlist(k) if k in MULTI else raw.getlist(k)[-1]) for k in raw}


def _sources(raw) -> dict[str, str]:
    return {name: raw[f"src_{name}"] for name in records.DEVICE_FIELDS if (raw.get(f"src_{name}") or "").strip()}


def _source_readings(sources: dict[str, str]) -> dict[str, dict]:
    out = {}
    for name, rid in sources.items():
        row = context.store().one("SELECT id, code, device_id, transport, value, unit, effective_time FROM readings"
                                  " WHERE id = ?", (rid,))
        if row:
            out[name] = row
    return out


def _render(resident, values, *, errors=None, sources=None, pre=None, status=200):
    sources = sources or {}
    return render_template("healthcheck/form.html", resident=resident, values=values, errors=errors or {},
                           sources=sources, readings=_source_readings(sources), pre=pre,
                           age=_age(resident, context.today())), status


@bp.get("/healthcheck/<resident_id>/new")
def new(resident_id: str):
    resident = resident_or_404(resident_id)
    pre = prefill.build(context.store(), resident_id=resident_id, today=context.today(),
                        tz=context.node().config["node"]["timezone"])
    return _render(resident, pre.values, sources=pre.sources, pre=pre)


def _edited_rows(raw) -> dict[str, Any]:
    """The form as posted, less the row whose 删除 was pressed, or with the proposed row whose 确认 was
    pressed now the doctor's (its `proposed` mark dropped); the form always ends each table with an
    empty row (rows.form_rows), which is what 添加一行 asks for."""
    values = {k: v for k, v in _inputs(raw).items() if not k.startswith(ROW_BUTTONS)}
    for key in raw:
        if key.startswith("row_remove_"):             # row_remove_<table>_<n>: its cells are <table>_<n>_<column>
            gone = key[len("row_remove_"):] + "_"
            values = {k: v for k, v in values.items() if not k.startswith(gone)}
        elif key.startswith("row_confirm_"):          # row_confirm_<table>_<n>: drop <table>_<n>_proposed
            values.pop(key[len("row_confirm_"):] + "_" + rows.PROPOSED, None)
    return values


@bp.post("/healthcheck/<resident_id>/new")
def create(resident_id: str):
    resident = resident_or_404(resident_id)
    day = request.form.get("check_date") or context.today().isoformat()
    try:
        age = _age(resident, date.fromisoformat(day))
    except ValueError:
        age = _age(resident, context.today())
    sources = _sources(request.form)
    if any(k.startswith(ROW_BUTTONS) for k in request.form):          # the row buttons without JavaScript
        return _render(resident, _edited_rows(request.form), sources=sources)
    v = validate(request.form, today=context.today(), lang=lang(), age=age)
    if not v.ok:
        return _render(resident, _inputs(request.form), errors=v.errors, sources=sources, status=422)
    try:
        saved = records.save(context.store(), resident_id=resident_id, values=v.values, sources=sources,
                             actor=actor(), at=context.node().clock.now())
    except StoreFull:
        disk_full.notice()
        return _render(resident, _inputs(request.form), sources=sources, status=disk_full.STATUS)
    return redirect(url_for("healthcheck.show", check_id=saved.id, saved=1), 303)


@bp.get("/healthchecks/<check_id>")
def show(check_id: str):
    h = records.get(context.store(), check_id, request.args.get("version", type=int))
    if h is None:
        abort(404)
    resident = resident_or_404(h["resident_id"])
    used = records.readings_used(context.store(), check_id, h["shown_version"])
    return render_template("healthcheck/show.html", h=h, v=h["values"], resident=resident, used=used,
                           saved=request.args.get("saved"))


@bp.get("/healthchecks/<check_id>/print")
def printout(check_id: str):
    """The saved record laid out like the paper form, every item with its options, for A4."""
    h = records.get(context.store(), check_id, request.args.get("version", type=int))
    if h is None:
        abort(404)
    resident = resident_or_404(h["resident_id"])
    return render_template("healthcheck/print.html", h=h, v=h["values"], resident=resident,
                           used=records.readings_used(context.store(), check_id, h["shown_version"]))


@bp.get("/elderly")
def worklist():
    """老年人健康管理: the KPI of the year and the residents 65+ not checked yet."""
    year = request.args.get("year", type=int) or context.today().year
    return render_template("healthcheck/worklist.html", e=elderly.load(context.store(), year), year=year)
