"""The node's web UI: Flask app factory. Imports edge.core only; nothing imports edge.web."""
from __future__ import annotations

from flask import Flask

from edge.core.config import Config
from edge.core.node import Node


def create_app(config: Config | None = None, *, node: Node | None = None) -> Flask:
    from edge.core import config as config_mod

    node = node or Node(config or config_mod.load())
    app = Flask(__name__)
    from .typed import TypedRequest  # NFKC: full-width digits, letters and spaces as plain text
    app.request_class = TypedRequest
    web = node.config["web"]
    app.config.update(
        SECRET_KEY=web["secret_key"] or node.secret("web-secret-key"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web["secure_cookies"],
        JSON_AS_ASCII=False,
    )
    app.extensions["node"] = node

    from . import health, readings
    app.register_blueprint(health.bp)
    app.register_blueprint(readings.bp)
    from . import followup, reports
    app.register_blueprint(followup.bp)
    from . import healthcheck  # the elderly's 健康体检表 and the check day (issue 20)
    app.register_blueprint(healthcheck.bp)
    from . import checkday
    app.register_blueprint(checkday.bp)
    app.register_blueprint(reports.bp)
    from . import management  # end a chronic-disease management (死亡/迁出/失访) from the resident page
    app.register_blueprint(management.bp)
    from . import sync_page  # the link to the county: status, refused records, conflicts, sync now
    app.register_blueprint(sync_page.bp)
    from .workbench import install  # login, CSRF, languages and the doctor's workbench
    install(app)
    from . import setup  # first-boot /setup page (issue 8)
    setup.install(app)
    from . import limits  # body limit, 4xx with a reason for malformed input (issue 14)
    limits.install(app)
    from . import disk_full  # a full data partition: the message, never a bare 500
    disk_full.install(app)
    return app
