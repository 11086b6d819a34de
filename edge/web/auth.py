"""Log in, log out, choose the language."""
from __future__ import annotations

from flask import (Blueprint, abort, flash, redirect, render_template, request, session, url_for)
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user

from edge.core import accounts
from . import context

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("residents.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    from .workbench import WebUser

    if current_user.is_authenticated:
        return redirect(url_for("residents.home"))
    error = None
    if request.method == "POST":
        try:
            user = accounts.authenticate(context.store(), request.form.get("username", ""),
                                         request.form.get("password", ""), address=request.remote_addr or "",
                                         now=context.node().clock.now())
        except accounts.LoginRefused as e:
            error = gettext(str(e))
        else:
            lang = session.get("lang")
            session.clear()                       # a fresh session at login (no fixation)
            if lang:
                session["lang"] = lang
            login_user(WebUser(user))
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")), 303)
    return render_template("login.html", error=error, username=request.form.get("username", "")), \
        (401 if error else 200)


@bp.post("/logout")
def logout():
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    flash(gettext("You are logged out."), "info")
    return redirect(url_for("auth.login"), 303)


@bp.get("/lang/<code>")
def language(code: str):
    from .workbench import LANGUAGES

    if code not in LANGUAGES:
        abort(404)
    session["lang"] = code
    return redirect(_safe_next(request.args.get("next")), 303)
