"""What the node's web server accepts (docs/security.md): bodies up to `MAX_BODY` (a 413 with a
reason beyond it, cut by waitress before it is spooled), and for anything malformed a 4xx that says
why - as JSON under /api/, as a page elsewhere - never a 500."""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

MAX_BODY = 1 << 20            # the largest form or JSON body the workbench sends is a few KiB
SERVER_SLACK = 64 << 10       # waitress cuts a little above, so Flask can say why in between


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


def server_options(config) -> dict[str, Any]:
    """waitress settings: the body limit, and X-Forwarded-For only from a configured proxy."""
    options: dict[str, Any] = {"max_request_body_size": MAX_BODY + SERVER_SLACK}
    proxy = config["web"]["trusted_proxy"]
    if proxy:
        options.update(trusted_proxy=proxy, trusted_proxy_count=1, trusted_proxy_headers={"x-forwarded-for"},
                       clear_untrusted_proxy_headers=True)
    return options
