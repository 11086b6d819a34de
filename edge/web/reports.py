"""Worklist and reports in the browser (blueprint `reports`).

  GET  /worklist                              who is urgent, overdue, due this quarter, not seen this year
  GET  /reports?period=2026-03|2026-Q1|2026   the report; numerators/denominators link to residents
  GET  /reports/<period>/residents?key=&part= the residents behind a number
  GET  /reports/<period>.csv | .xlsx          exports (the same rows as the page)
  POST /reports/<period>/write                write the report (snapshot + outbox + audit)
  GET  /api/v1/reports/<period>               the report as JSON (numbers and the resident ids behind them)
  GET  /api/v1/worklist                       the worklist as JSON
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for

from edge.core.field_seal import open_record
from edge.core import codes
from edge.reports import archive, cached, export, kpi, source, worklist as worklist_mod
from edge.reports.population import month, parse_period
from . import context
from .followup import actor, lang, require_login, template_helpers, today, tz

bp = Blueprint("reports", __name__)
SHOWN_PER_SECTION = 100      # the whole section is one click away (?section=...)
bp.before_request(require_login)
bp.context_processor(template_helpers)
bp.teardown_app_request(context.close_store)


@bp.get("/worklist")
def worklist():
    day = today()
    wl = cached.worklist(context.store(), day)
    only = request.args.get("section")
    sections = [(k, items) for k, items in wl.sections() if not only or k == only]
    return render_template("reports/worklist.html", sections=sections, labels=worklist_mod.SECTION_LABELS,
                           today=day, limit=None if only else SHOWN_PER_SECTION)


def _period(text: str | None):
    if not text:
        d = today()
        return month(d.year, d.month)
    try:
        return parse_period(text)
    except ValueError:
        abort(404)


@bp.get("/reports")
def report():
    period = _period(request.args.get("period"))
    r = cached.report(context.store(), period, tz())
    code_names = {c.loinc: (c.display_zh if lang() == "zh" else c.display_en) for c in codes.CODES}
    return render_template("reports/report.html", r=r, period=period, rows=export.rows(r, lang()),
                           code_names=code_names,
                           order=export.ORDER, labels=kpi.LABELS,
                           written=archive.written(context.store(), period.label),
                           written_id=request.args.get("written"),
                           elderly=cached.elderly(context.store(), period.end.year, until=period.end))


@bp.get("/reports/<period>/residents")
def residents(period: str):
    p = _period(period)
    key, part = request.args.get("key", ""), request.args.get("part", "numerator")
    r = cached.report(context.store(), p, tz())
    if key not in r.indicators or part not in ("numerator", "denominator"):
        abort(404)
    ind = r.indicators[key]
    ids = list(getattr(ind, part) or ())
    if key == "device_bp":      # follow-up ids: show their residents
        rows = context.store().query(
            "SELECT f.id AS followup_id, r.id, r.name, r.birth_date, r.phone, f.visit_date FROM followups f"
            " JOIN residents r ON r.id = f.resident_id WHERE f.id IN (SELECT value FROM json_each(?))"
            " ORDER BY f.visit_date", (_json(ids),))
    else:
        rows = context.store().query(
            "SELECT id, name, birth_date, phone FROM residents WHERE id IN (SELECT value FROM json_each(?))"
            " ORDER BY name", (_json(ids),))
    rows = [open_record(context.store().conn, r) for r in rows]      # phones sealed at rest
    return render_template("reports/residents.html", rows=rows, ind=ind, part=part, period=p,
                           label=ind.label(lang()))


def _json(ids: list[str]) -> str:
    import json
    return json.dumps(ids)


def _elderly(p):
    """The year-to-date 老年人健康管理 figures the exports carry (as on the page)."""
    return cached.elderly(context.store(), p.end.year, until=p.end)


@bp.get("/reports/<period>.csv")
def csv_export(period: str):
    p = _period(period)
    body = export.to_csv(source.report(context.store(), p, tz()), lang(), _elderly(p))
    return Response(body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename=report-{p.label}.csv"})


@bp.get("/reports/<period>.xlsx")
def xlsx_export(period: str):
    p = _period(period)
    body = export.to_xlsx(source.report(context.store(), p, tz()), lang(), _elderly(p))
    return Response(body, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=report-{p.label}.xlsx"})


@bp.post("/reports/<period>/write")
def write(period: str):
    p = _period(period)
    rid = archive.write(context.store(), source.report(context.store(), p, tz()), actor=actor(),
                        at=context.node().clock.now())
    return redirect(url_for("reports.report", period=p.label, written=rid))


@bp.get("/api/v1/reports/<period>")
def api_report(period: str):
    return jsonify(archive.snapshot(cached.report(context.store(), _period(period), tz())))


@bp.get("/api/v1/worklist")
def api_worklist():
    wl = cached.worklist(context.store(), today())
    return jsonify({"today": wl.today.isoformat(), **{
        key: [{"resident_id": i.resident_id, "name": i.name, "disease": i.disease,
               "last_visit": i.last_visit and i.last_visit.isoformat(), "due": i.due and i.due.isoformat(),
               "days_overdue": i.days_overdue} for i in items]
        for key, items in wl.sections()}})
