"""Chronic-disease management on the resident page: its history (since, ended, why) and the
"end management" action (死亡/迁出/失访/...) with a date. The record is edge.core.management."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import get_locale, gettext
from flask_login import current_user

from edge.core import management
from edge.core.errors import NotFound, ValidationError
from . import context

bp = Blueprint("management", __name__)


@bp.app_template_global()
def management_history(resident_id: str) -> list[dict]:
    zh = str(get_locale() or "zh").startswith("zh")
    rows = management.history(context.store(), resident_id)
    for r in rows:
        r["reason_label"] = r["end_reason_zh"] if zh else r["end_reason_en"]
    return rows


@bp.app_template_global()
def management_end_reasons() -> list[tuple[str, str]]:
    zh = str(get_locale() or "zh").startswith("zh")
    return [(code, zh_label if zh else en) for code, (zh_label, en) in management.END_REASONS.items()]


@bp.post("/residents/<resident_id>/management/<disease>/end")
def end(resident_id: str, disease: str):
    node = context.node()
    back = redirect(url_for("residents.page", resident_id=resident_id), 303)
    try:
        on = date.fromisoformat(request.form.get("ended_on", ""))
    except ValueError:
        flash(gettext("Enter the date management ended as YYYY-MM-DD."), "error")
        return back
    try:
        management.end(node.store, resident_id=resident_id, disease=disease, on=on,
                       reason=request.form.get("end_reason", ""), note=request.form.get("note", "").strip()[:200],
                       actor=current_user.username, at=node.clock.now(), today=context.today())
    except NotFound:
        abort(404)
    except ValidationError as e:
        flash(gettext("Management was not ended: %(why)s", why=str(e)), "error")
        return back
    flash(gettext("Management ended."), "ok")
    return back
