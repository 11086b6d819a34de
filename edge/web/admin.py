"""Admin pages: user accounts. Doctors get 403 here."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user

from edge.core import accounts
from edge.core.errors import NotFound, ValidationError
from . import context

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def admins_only():
    if not getattr(current_user, "is_admin", False):
        abort(403)


def _now():
    return context.node().clock.now()


@bp.route("/users", methods=["GET", "POST"])
def users():
    errors, values, shown_password = {}, {}, None
    if request.method == "POST":
        values = dict(request.form)
        password = accounts.new_password()
        try:
            accounts.add(context.store(), request.form.get("username", ""), password,
                         role=request.form.get("role", "doctor"), display_name=request.form.get("display_name", ""),
                         now=_now(), actor=current_user.username)
        except ValidationError as e:
            errors[e.field or "username"] = gettext(str(e))
        else:
            shown_password, values = (values.get("username", "").strip().lower(), password), {}
    return render_template("admin_users.html", users=accounts.all_users(context.store()), errors=errors,
                           values=values, shown_password=shown_password), (422 if errors else 200)


@bp.post("/users/<username>/disable")
def disable(username: str):
    if username == current_user.username:
        flash(gettext("You cannot disable your own account."), "error")
        return redirect(url_for("admin.users"), 303)
    try:
        accounts.set_disabled(context.store(), username, request.form.get("enable") != "1", now=_now(),
                              actor=current_user.username)
    except NotFound:
        abort(404)
    return redirect(url_for("admin.users"), 303)


@bp.post("/users/<username>/logout-all")
def logout_all(username: str):
    """End every session of the account (a lost tablet, a shared password)."""
    try:
        accounts.end_sessions(context.store(), username, now=_now(), actor=current_user.username)
    except NotFound:
        abort(404)
    flash(gettext("%(u)s is logged out everywhere.", u=username), "info")
    return redirect(url_for("admin.users"), 303)


@bp.post("/users/<username>/password")
def reset_password(username: str):
    password = accounts.new_password()
    try:
        accounts.set_password(context.store(), username, password, now=_now(), actor=current_user.username)
    except NotFound:
        abort(404)
    return render_template("admin_users.html", users=accounts.all_users(context.store()), errors={}, values={},
                           shown_password=(username, password))
