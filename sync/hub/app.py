"""The hub's Flask app: the node API (sync/hub/node_api.py) and county IT's pages
(sync/hub/web.py, behind a log-in), with one set of error answers.

Workers keep no state of their own (everything is in HubStore), so several can run behind a
load balancer. Status codes: 401 unsigned / bad signature / unknown node / refused code / request
time outside the window, 409 replayed request or out-of-order chunk, 413 batch larger than allowed,
400 malformed, 503 + Retry-After an upload beyond the worker's uploads in service (sync.hub.admission).
Nothing a client sends is answered with a 500: a malformed body is a 400 that says why.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Callable

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from sync import protocol
from .service import Hub, HubError, utcnow

BODY_SLACK = 65536     # request body allowed beyond max_batch_bytes (a chunk's JSON, headers)


def create_app(hub: Hub, *, now: Callable[[], datetime] = utcnow, secret_key: bytes | None = None, ca=None,
               server_names=(), uploads_in_service: int = 0, busy_retry_max_seconds: int = 60) -> Flask:
    """`ca` (sync.hub.ca.CountyCA) signs node certificates; `server_names` are the hub's own
    names, which no node certificate may carry; more than `uploads_in_service` uploads at once in
    this process are answered 503 + Retry-After (sync.hub.admission; 0: never)."""
    from . import delivery_view, node_api, web
    from .admission import Admission

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = hub.max_batch_bytes + BODY_SLACK
    app.extensions["clinic_edge_hub"] = (hub, now)
    app.extensions["clinic_edge_hub_ca"] = (ca, frozenset(server_names))
    app.register_blueprint(node_api.bp)
    web.init(app, hub, secret_key=secret_key)
    app.register_blueprint(delivery_view.bp)          # /deliveries (issue 19.2, docs/interop.md)
    gate = Admission(app.wsgi_app, limit=uploads_in_service, retry_max=busy_retry_max_seconds)
    app.wsgi_app = gate
    from .admission_figures import Reporter

    gate.on_answer = Reporter(hub.store, gate.health, now=now).changed   # the dashboard's view of every worker
    app.extensions["clinic_edge_admission"] = gate    # /healthz shows its figures

    @app.errorhandler(HubError)
    def hub_error(e: HubError):
        return node_api.error_answer(e)

    @app.errorhandler(protocol.ProtocolError)
    def protocol_error(e):
        return json_answer({"error": str(e)}, 400)

    @app.errorhandler(413)
    def too_large(_e):
        return json_answer({"error": f"request larger than {hub.max_batch_bytes} bytes; send smaller batches"}, 413)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if request.path.startswith(node_api.NODE_PATHS):
            return json_answer({"error": e.description or e.name}, e.code or 400)
        return e

    return app


def json_answer(doc: dict, status: int = 200) -> Response:
    return Response(json.dumps(doc, ensure_ascii=False), status, content_type="application/json")
