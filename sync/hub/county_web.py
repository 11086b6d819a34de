"""The county view's pages (docs/county.md): the county table for a period with who has not
reported, the trend, one clinic's reports, CSV/XLSX export, each clinic's township (admin), and
the de-identified export (county or admin role). Every logged-in hub account sees the table."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from edge.core.errors import ValidationError
from . import county, county_export, deidentify

bp = Blueprint("county", __name__, url_prefix="/county")
KINDS = {"month": "月报 monthly", "quarter": "季报 quarterly"}


def _hub():
    return current_app.extensions["clinic_edge_hub"]


def _kind() -> str:
    kind = request.args.get("kind", "")
    period = request.args.get("period", "")
    if period:
        try:
            return county.period_kind(period)
        except ValidationError as e:
            abort(400, str(e))
    return kind if kind in KINDS else "month"


def _period(found, kind: str) -> str | None:
    asked = request.args.get("period", "")
    if asked:
        return asked
    known = county.periods(found, kind)
    return known[-1] if known else None


def _percent(fig) -> str:
    q = county.rate(fig) if fig else None
    return "-" if q is None else f"{q * 100:.1f}%"


def _view_args(**kw):
    return {"labels": county.LABELS, "order": county.ORDER, "kinds": KINDS, "percent": _percent,
            "user": current_user.user, **kw}


@bp.get("")
@login_required
def view():
    hub, _now = _hub()
    kind = _kind()
    reports = county.clinic_reports(hub.store)
    period = _period(reports[0], kind)
    t = county.table(hub.store, period, reports) if period else None
    return render_template("county.html", **_view_args(
        kind=kind, period=period, table=t, periods=county.periods(reports[0], kind),
        trend=county.trend(hub.store, kind, reports=reports), places=county.all_places(hub.store)))


@bp.get("/clinic/<node>")
@login_required
def clinic(node: str):
    hub, _now = _hub()
    where = county.all_places(hub.store)
    if node not in where:
        abort(404, f"没有此节点 no node named {node}")
    kind = _kind()
    reports = county.clinic_reports(hub.store)
    return render_template("county_clinic.html", **_view_args(
        kind=kind, place=where[node], trend=county.trend(hub.store, kind, node=node, last=24, reports=reports),
        township=county.trend(hub.store, kind, township=where[node].township, last=24, reports=reports)))


@bp.get("/export.<fmt>")
@login_required
def export(fmt: str):
    hub, _now = _hub()
    reports = county.clinic_reports(hub.store)
    period = _period(reports[0], _kind())
    if fmt not in ("csv", "xlsx") or not period:
        abort(404)
    t = county.table(hub.store, period, reports)
    return _file(county_export.county_csv(t) if fmt == "csv" else county_export.county_xlsx(t),
                 f"county-{period}", fmt)


@bp.post("/places")
@login_required
def place_set():
    if not current_user.user.is_admin:
        abort(403, "只有管理员可以设置乡镇 only an admin can set a clinic's township")
    hub, now = _hub()
    try:
        county.set_place(hub.store, request.form.get("node", ""), request.form.get("township", ""),
                         request.form.get("clinic"), actor=current_user.user.username, now=now())
    except ValidationError as e:
        return render_template("message.html", title="无法保存 not saved", message=str(e)), 400
    return redirect(url_for("county.view"), 303)


@bp.get("/deidentified.<fmt>")
@login_required
def deidentified(fmt: str):
    if not current_user.user.may_export_deidentified:
        abort(403, "只有基层卫生科或管理员可以导出 only county staff or an admin can export")
    if fmt not in ("csv", "xlsx"):
        abort(404)
    settings = current_app.config.get("CLINIC_EDGE_DEID")
    if not settings:
        abort(503, "去标识化密钥未配置 the de-identification key is not configured ([hub] deid_key_file)")
    hub, _now = _hub()
    path, min_cell = settings
    try:
        out = deidentify.build(hub.store, deidentify.load_or_create_key(Path(path)), min_cell=min_cell)
    except deidentify.DeidError as e:
        abort(503, str(e))
    return _file(deidentify_file(out, fmt), "deidentified-followups", fmt)


def deidentify_file(out: deidentify.Export, fmt: str) -> bytes:
    if fmt == "csv":
        return county_export.to_csv(out.title(), deidentify.HEADER, out.body())
    return county_export.to_xlsx(out.title(), deidentify.HEADER, out.body(), sheet="deidentified")


def _file(data: bytes, name: str, fmt: str) -> Response:
    mime = ("text/csv; charset=utf-8" if fmt == "csv"
            else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return Response(data, content_type=mime,
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})
