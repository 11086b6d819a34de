"""The doctor's workbench wired into the app: login, CSRF, language, idle timeout, security
headers, and the blueprints (auth, residents, measuring/inbox, admin, API).

Every page needs a login except the ones in PUBLIC; an idle session ends after [web] idle_minutes.
"""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Flask, flash, g, jsonify, redirect, request, session, url_for
from flask_babel import Babel, gettext
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from edge.core import accounts, measuring
from edge.core.reading import parse_iso
from . import context, i18n, sessions

PUBLIC = {"auth.login", "auth.language", "health.healthz", "static"}
# asked every few seconds by an open page: not a sign that a person is there
PASSIVE = {"api.resident_live", "api.measuring_state"}
LANGUAGES = ("zh", "en")


def install(app: Flask) -> None:
    node = context_node(app)
    web = node.config["web"]
    idle = timedelta(minutes=web["idle_minutes"])
    app.config.update(
        PERMANENT_SESSION_LIFETIME=idle,
        SESSION_COOKIE_NAME="clinic_edge_session",
        REMEMBER_COOKIE_DURATION=timedelta(0),
        WTF_CSRF_TIME_LIMIT=None,          # the token lives as long as the (idle-limited) session
        BABEL_DEFAULT_LOCALE=web["language"],
        BABEL_TRANSLATION_DIRECTORIES=str(i18n.compiled(node.path("run", "translations", ".keep").parent)),
    )
    CSRFProtect(app)
    Babel(app, locale_selector=lambda: session.get("lang") or web["language"])
    login = LoginManager(app)
    login.login_view = "auth.login"
    login.login_message = None
    login.session_protection = "strong"
    login.user_loader(_load_user)

    zone = ZoneInfo(node.config["node"]["timezone"])
    app.add_template_filter(lambda t, fmt="%Y-%m-%d %H:%M": _local(t, zone, fmt), "localtime")
    app.add_template_filter(_num, "num")
    app.add_template_filter(unit_text, "unit")

    from . import admin, api, auth, measure, residents
    for bp in (auth.bp, residents.bp, measure.bp, admin.bp, api.bp):
        app.register_blueprint(bp)

    @app.before_request
    def guard():
        if request.endpoint in PUBLIC or request.endpoint is None:
            return None
        if not current_user.is_authenticated:
            return _login_needed()
        now = node.clock.now()
        ended = sessions.why_ended(web, now=now)
        if ended:
            logout_user()
            session.clear()
            flash(gettext(ended[0], **ended[1]), "info")
            return _login_needed()
        if request.endpoint not in PASSIVE:
            sessions.touch(now=now)
        return None

    @app.errorhandler(CSRFError)
    def csrf_refused(e):
        if request.path.startswith("/api/"):
            return jsonify(error="csrf", message=gettext("The form expired or came from elsewhere; reload the "
                                                         "page and try again.")), 400
        flash(gettext("The form expired or came from elsewhere; reload the page and try again."), "error")
        return redirect(request.referrer if _same_origin(request.referrer) else url_for("residents.home")), 303

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
        if current_user.is_authenticated and request.endpoint != "static":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.context_processor
    def workbench_context():
        if not current_user.is_authenticated:
            return {"lang": _lang(web)}
        if "measuring_now" not in g:
            g.measuring_now = measuring.current(context.store(), now=node.clock.now())
        return {"lang": _lang(web), "measuring_now": g.measuring_now,
                "inbox_count": measuring.inbox_count(context.store()),
                "clinic_name": node.config["node"]["clinic_name"]}


def _local(t: str | None, zone: ZoneInfo, fmt: str) -> str:
    dt = parse_iso(t) if t else None
    return dt.astimezone(zone).strftime(fmt) if dt else ""


def _num(v) -> str:
    if v is None:
        return "—"
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


UNITS = {"mm[Hg]": "mmHg", "Cel": "°C", "/min": "/min", "kg/m2": "kg/m²"}


def unit_text(unit: str | None) -> str:
    """UCUM as a doctor reads it (mm[Hg] -> mmHg)."""
    return UNITS.get(unit or "", unit or "")


def local_time(t: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time in the clinic's time zone, as the pages show it."""
    from flask import current_app

    return _local(t, ZoneInfo(current_app.extensions["node"].config["node"]["timezone"]), fmt)


def context_node(app: Flask):
    return app.extensions["node"]


def _lang(web) -> str:
    return session.get("lang") or web["language"]


def _load_user(token: str):
    """The logged-in user, if the session's generation is still the account's (sessions.py)."""
    parsed = sessions.parse_token(token)
    user = accounts.get(context.store(), parsed[0]) if parsed else None
    if user is None or user.disabled or user.session_generation != parsed[1]:
        return None
    return WebUser(user)


class WebUser:
    """Flask-Login's view of an account."""

    is_active = True
    is_anonymous = False
    is_authenticated = True

    def __init__(self, user: accounts.User):
        self.account = user
        self.username = user.username
        self.display_name = user.display_name or user.username
        self.role = user.role
        self.is_admin = user.is_admin

    def get_id(self) -> str:
        return sessions.user_token(self.account.id, self.account.session_generation)


def _login_needed():
    if request.path.startswith("/api/"):
        return jsonify(error="login", message=gettext("Please log in.")), 401
    return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def _same_origin(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)
