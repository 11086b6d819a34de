"""Pages: the workbench (search box), register/edit a resident, the resident page with live
vitals and trend charts."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user

from edge.core import measuring, residents, vitals
from edge.core.clock import start_of_day
from edge.core.errors import NotFound, StoreFull
from edge.core.resident_search import NUMBER_HINT, hint as search_hint, search, searchable_lengths
from . import charts, context, disk_full

bp = Blueprint("residents", __name__)
CHART_DAYS = 365


def _now():
    return context.node().clock.now()


def translated(errors: dict[str, str]) -> dict[str, str]:
    return {k: gettext(v) for k, v in errors.items()}


@bp.get("/")
def home():
    q = request.args.get("q", "").strip()
    results = search(context.store(), q, limit=30) if q else []
    if q and len(results) == 1 and request.args.get("go"):
        return redirect(url_for("residents.page", resident_id=results[0]["id"]))
    return render_template("workbench.html", q=q, results=results, hint=search_hint(context.store(), q) if q else None,
                           number_hint=context.store().fields and NUMBER_HINT, number_lengths=searchable_lengths(),
                           today=[] if q else measuring.today(context.store(), since=_start_of_day()))


def _start_of_day():
    return start_of_day(_now(), context.node().config["node"]["timezone"])


@bp.route("/residents/new", methods=["GET", "POST"])
def new():
    values, errors, duplicate = dict(request.form), {}, None
    if request.method == "POST":
        try:
            rid = residents.create(context.store(), request.form, division_code=context.node().config["node"][
                "division_code"], now=_now(), actor=current_user.username, today=context.today())
        except residents.FormInvalid as e:
            errors, duplicate = translated(e.errors), e.duplicate_of
        except StoreFull:
            disk_full.notice()
            return render_template("resident_form.html", values=values, errors={}, duplicate=None,
                                   resident=None), disk_full.STATUS
        else:
            flash(gettext("Resident registered."), "ok")
            return redirect(url_for("residents.page", resident_id=rid), 303)
    return render_template("resident_form.html", values=values, errors=errors, duplicate=duplicate,
                           resident=None), (422 if errors else 200)


@bp.route("/residents/<resident_id>/edit", methods=["GET", "POST"])
def edit(resident_id: str):
    resident = _live(resident_id)
    values, errors, duplicate = dict(resident), {}, None
    if request.method == "POST":
        values = dict(request.form)
        try:
            residents.update(context.store(), resident_id, request.form, now=_now(), actor=current_user.username,
                             version=request.form.get("version") or None, today=context.today())
        except residents.FormInvalid as e:
            errors, duplicate = translated(e.errors), e.duplicate_of
        except StoreFull:
            disk_full.notice()
            return render_template("resident_form.html", values=values, errors={}, duplicate=None,
                                   resident=resident), disk_full.STATUS
        else:
            flash(gettext("Changes saved."), "ok")
            return redirect(url_for("residents.page", resident_id=resident_id), 303)
    return render_template("resident_form.html", values=values, errors=errors, duplicate=duplicate,
                           resident=resident), (422 if errors else 200)


@bp.post("/residents/<resident_id>/void")
def void(resident_id: str):
    try:
        residents.void(context.store(), resident_id, request.form.get("reason", ""), now=_now(),
                       actor=current_user.username)
    except residents.FormInvalid as e:
        flash(gettext(e.errors["reason"]), "error")
        return redirect(url_for("residents.page", resident_id=resident_id), 303)
    except NotFound:
        abort(404)
    flash(gettext("The record was voided."), "ok")
    return redirect(url_for("residents.home"), 303)


def _live(resident_id: str) -> dict:
    r = residents.get(context.store(), resident_id)
    if r is None:
        abort(404)
    return r


@bp.get("/residents/<resident_id>")
def page(resident_id: str):
    store = context.store()
    resident = _live(resident_id)
    bound = store.query("SELECT id, kind, name FROM devices WHERE resident_id = ? AND removed_at IS NULL",
                        (resident_id,))
    wearables = store.query("SELECT id, kind, name FROM devices WHERE resident_id IS NULL AND removed_at IS NULL"
                            " AND kind = 'wearable' ORDER BY id")
    return render_template("resident.html", r=resident, age=residents.age(resident["birth_date"], context.today()),
                           latest=vitals.latest(store, resident_id), rows=vitals.recent(store, resident_id),
                           last_seq=vitals.last_seq(store, resident_id), charts=chart_panel(resident_id),
                           bound=bound, wearables=wearables,
                           minutes=context.node().config["web"]["measuring_minutes"])


@bp.get("/residents/<resident_id>/charts")
def charts_fragment(resident_id: str):
    _live(resident_id)
    return render_template("_charts.html", charts=chart_panel(resident_id))


def chart_panel(resident_id: str) -> list:
    # in the clinic's zone: the axis shows the clinic's dates
    store, end = context.store(), _now().astimezone(ZoneInfo(context.node().config["node"]["timezone"]))
    start = end - timedelta(days=CHART_DAYS)

    empty = gettext("No readings in the last 12 months.")

    def s(code):
        return vitals.series(store, resident_id, code, start)

    def chart(title, lines, **kw):
        return title, charts.svg(title, lines, start=start, end=end, empty=empty, **kw)

    return [
        chart(gettext("Blood pressure"), [charts.Line(gettext("Systolic"), s(vitals.SYS), "sys"),
                                          charts.Line(gettext("Diastolic"), s(vitals.DIA), "dia")],
              unit="mmHg", limits=(140, 90)),
        chart(gettext("Blood glucose"), [charts.Line(gettext("Glucose"), s(vitals.GLUCOSE), "glu")],
              unit="mmol/L", limits=(7.0,)),
        chart(gettext("Weight"), [charts.Line(gettext("Weight"), s(vitals.WEIGHT), "wt")], unit="kg"),
    ]


