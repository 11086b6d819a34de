"""County IT's pages on the hub: log-in, the per-node dashboard (viewer or admin), node
registration (admin). Flask-Login sessions and Flask-WTF CSRF, as on the node (edge/web); the
node API (/v1/...) is signed per request instead and is exempt from both."""
from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from edge.core import accounts as rules
from . import accounts
from .node_api import NODE_PATHS
from .storage import now_iso

bp = Blueprint("web", __name__)
IDLE = timedelta(minutes=30)


class WebUser(UserMixin):
    def __init__(self, user: accounts.HubUser):
        self.user = user

    def get_id(self) -> str:
        return self.user.username


def init(app: Flask, hub, *, secret_key: bytes | None = None) -> None:
    from . import node_api

    app.config.update(
        SECRET_KEY=secret_key or hub.store.setting("web_secret_key", lambda: secrets.token_urlsafe(32)),
        SESSION_COOKIE_NAME="clinic_edge_hub_session", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=IDLE, WTF_CSRF_TIME_LIMIT=None)
    csrf = CSRFProtect(app)
    csrf.exempt(node_api.bp)
    login = LoginManager(app)
    login.login_view = "web.login"
    login.login_message = None
    login.session_protection = "strong"

    @login.user_loader
    def load(username: str):
        user = accounts.get(hub.store, username)
        return WebUser(user) if user else None

    @app.errorhandler(CSRFError)
    def csrf_refused(e):
        return render_template("message.html", title="表单已过期 form expired",
                               message="表单已过期或来自别处，请刷新页面再试。 The form expired or came from "
                                       "elsewhere; reload the page and try again."), 400

    app.session_interface = NoSessionForNodes()
    app.register_blueprint(bp)
    from . import county_web          # the county view (docs/county.md)

    app.register_blueprint(county_web.bp)


class NoSessionForNodes(SecureCookieSessionInterface):
    """The node API (/v1/, /v2/, /healthz) is signed per request and has no session: no cookie read or
    set and no `Vary: Cookie`, 14 bytes less on every answer a SIM card pays for (issue 17.4)."""

    def open_session(self, app, request):
        if request.path.startswith(NODE_PATHS):
            return self.null_session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if request.path.startswith(NODE_PATHS):
            return None
        return super().save_session(app, session, response)


def _hub():
    return current_app.extensions["clinic_edge_hub"]


def admin_required(view):
    @wraps(view)
    def wrapped(*a, **kw):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if not current_user.user.is_admin:
            abort(403, "只有管理员可以这样做 only an admin can do this")
        return view(*a, **kw)
    return wrapped


@bp.route("/login", methods=["GET", "POST"])
def login():
    hub, now = _hub()
    error = None
    if request.method == "POST":
        try:
            user = accounts.authenticate(hub.store, request.form.get("username", ""), request.form.get("password", ""),
                                         address=request.remote_addr or "", now=now())
        except rules.LoginRefused as e:
            error = str(e)
        else:
            session.clear()               # a fresh session at log-in (no fixation)
            login_user(WebUser(user))
            session.permanent = True
            return redirect(url_for("county.view" if user.role == "county" else "web.dashboard"), 303)
    return render_template("login.html", error=error, username=request.form.get("username", "")[:64]), \
        (401 if error else 200)


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("web.login"), 303)


@bp.get("/")
@login_required
def dashboard():
    from . import bundles
    from .dashboard import node_rows

    from . import admission_figures

    hub, now = _hub()
    admission = admission_figures.recent(hub.store, now())   # what every worker turned away (docs/hub.md)
    return render_template("dashboard.html", nodes=node_rows(hub.store, now()), now=now_iso(now()),
                           user=current_user.user, bundles=bundles.published(hub.store), admission=admission,
                           busy_line=admission_figures.busy_line(admission["shed"]) if admission["shed"] else "")


@bp.post("/bundles/withdraw")
@admin_required
def bundle_withdraw():
    """What `hub bundle withdraw` does, from the dashboard (admin only)."""
    from . import bundles

    hub, now = _hub()
    which = request.form.get("which", "").strip()[:64]
    done = bundles.withdraw(hub.store, hub.bundle_dir, which, now=now()) if which else []
    if not done:
        return render_template("message.html", title="没有可撤回的更新包 nothing to withdraw",
                               message=f"没有已发布且未撤回的更新包 {which!r}。 No published, not yet "
                                       f"withdrawn update bundle {which!r} on this hub."), 404
    nodes = ", ".join(sorted("全部 every node" if d["node"] == "*" else d["node"] for d in done))
    return render_template("message.html", title=f"已撤回更新包 {done[0]['version']} bundle withdrawn",
                           message=f"节点不再下载它，未安装的将被删除 nodes no longer fetch it; an unapplied "
                                   f"copy is deleted at their next sync: {nodes}")


@bp.post("/nodes")
@admin_required
def node_add():
    import re

    hub, now = _hub()
    name = request.form.get("name", "").strip()
    if not re.fullmatch(r"[\w.-]{1,64}", name):
        return render_template("message.html", title="节点名无效 bad node name",
                               message="节点名为 1-64 个字母、数字、'.'、'_' 或 '-'。 A node name is 1-64 letters, "
                                       "digits, '.', '_' or '-'."), 400
    existing = hub.store.node(name)
    if existing and existing["pubkey"]:
        return render_template("message.html", title="已注册 already enrolled",
                               message=f"节点 {name} 已注册。 Node {name} is already enrolled."), 409
    code = hub.add_node(name, now=now())
    return render_template("message.html", title=f"节点 {name} 已登记 node registered",
                           message=f"注册码 enrollment code (once): {code}", code=code)
