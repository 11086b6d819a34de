"""What the node's web server accepts (docs/security.md): bodies up to `MAX_BODY` (a 413 with a
reason beyond it, cut by the server (cheroot, `SERVER_BODY_LIMIT`) before it is read), and for anything malformed a 4xx that says
why - as JSON under /api/, as a page elsewhere - never a 500."""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

MAX_BODY = 1 << 20            # the largest form or JSON body the workbench sends is a few KiB
SERVER_SLACK = 64 << 10       # the server cuts a little above, so Flask can say why in between
SERVER_BODY_LIMIT = MAX_BODY + SERVER_SLACK


def install(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @app.errorhandler(413)
    def too_large(_e):
        return refused(413, "too_large", gettext("The request is larger than %(n)d KiB and was not accepted.",
                                                 n=MAX_BODY // 1024))

    @app.errorhandler(HTTPException)
    def api_errors(e: HTTPException):
        if not request.path.startswith("/api/") or e.code is None or e.code < 400:
            return e
        return jsonify(error=(e.name or "error").lower().replace(" ", "_"), message=e.description), e.code


def refused(status: int, error: str, message: str):
    if request.path.startswith("/api/"):
        return jsonify(error=error, message=message), status
    return render_template("request_refused.html", reason=message), status


def behind_proxy(app, config):
    """X-Forwarded-For is believed only from `[web] trusted_proxy` (its last hop becomes the
    client's address); from anyone else the header is dropped, so a client cannot pick the
    address the login throttle and the session binding see."""
    proxy = config["web"]["trusted_proxy"]

    def wsgi(environ, start_response):
        forwarded = environ.pop("HTTP_X_FORWARDED_FOR", None)
        if proxy and forwarded and environ.get("REMOTE_ADDR") == proxy:
            environ["REMOTE_ADDR"] = forwarded.split(",")[-1].strip()
        return app(environ, start_response)
    return wsgi
