"""Log in, log out, choose the language."""
from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for)
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user
from werkzeug.exceptions import HTTPException

from edge.core import accounts
from . import context, sessions

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """`target` if it is a page of this app, else the home page (no open redirect)."""
    return target if local_page(target) else url_for("residents.home")


def local_page(target: str | None) -> bool:
    """True for a path (and query) that names a GET page of this app, and nothing a browser could
    read as another host: no scheme or host, no control character or whitespace (browsers drop
    tabs and newlines, so `/%09/evil` becomes `//evil`), no backslash (read as `/`), no `//` in the
    path, also after percent-decoding it."""
    if not target or len(target) > 2048 or not target.startswith("/"):
        return False
    if "\\" in target or any(_unsafe_char(c) for c in target):
        return False
    path = target.partition("?")[0].partition("#")[0]
    for text in (unquote(path), unquote(unquote(path))):
        if "//" in text or "\\" in text or any(_unsafe_char(c) for c in text):
            return False
    if "//" in path or urlsplit(target).netloc:
        return False
    try:
        current_app.url_map.bind("localhost").match(unquote(path), method="GET")
    except HTTPException:      # NotFound, MethodNotAllowed, or a redirect to a canonical URL
        return False
    return True


def _unsafe_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "CZ"     # control, format, separators (every space)


@bp.route("/login", methods=["GET", "POST"])
def login():
    from .workbench import WebUser

    if current_user.is_authenticated:
        return redirect(url_for("residents.home"))
    error = None
    if request.method == "POST":
        now = context.node().clock.now()
        try:
            user = accounts.authenticate(context.store(), request.form.get("username", ""),
                                         request.form.get("password", ""), address=sessions.client_address(),
                                         now=now)
        except accounts.LoginThrottled as e:
            error = gettext(str(e), minutes=e.minutes)
        except accounts.LoginRefused as e:
            error = gettext(str(e))
        else:
            lang = session.get("lang")
            session.clear()                       # a fresh session at login (no fixation)
            if lang:
                session["lang"] = lang
            login_user(WebUser(user))
            sessions.begin(now=now)
            return redirect(_safe_next(request.args.get("next")), 303)
    return render_template("login.html", error=error, username=request.form.get("username", "")), \
        (401 if error else 200)


@bp.post("/logout")
def logout():
    """Ends this session and every copy of its cookie (and the user's other sessions)."""
    accounts.end_sessions(context.store(), current_user.username, now=context.node().clock.now(), actor=None)
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
