"""The hub's Flask app: enrollment, signed uploads (resumable chunks), downlink pulls, dashboard.

Workers keep no state of their own (everything is in HubStore), so several can run behind a
load balancer. Status codes: 401 unsigned / bad signature / unknown node / refused code,
409 replayed request or out-of-order chunk, 413 batch larger than allowed, 400 malformed.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Callable

from flask import Flask, Response, g, render_template, request

from sync import protocol
from .service import Hub, HubError, TooLarge, utcnow
from .storage import now_iso


STATUS_KEYS = ("backlog", "oldest_pending", "quarantined", "conflicts", "clock_offset_s", "software",
               "bytes_today", "last_success")


def create_app(hub: Hub, *, now: Callable[[], datetime] = utcnow, ca=None, server_names=()) -> Flask:
    """`ca` (sync.hub.ca.CountyCA) signs node certificates; `server_names` are the hub's own
    names, which no node certificate may carry."""
    from . import enrollment

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = hub.max_batch_bytes + 65536

    @app.errorhandler(HubError)
    def hub_error(e: HubError):
        return _json({"error": str(e)}, e.status)

    @app.errorhandler(protocol.ProtocolError)
    def protocol_error(e):
        return _json({"error": str(e)}, 400)

    @app.errorhandler(413)
    def too_large(_e):
        return _json({"error": f"request larger than {hub.max_batch_bytes} bytes; send smaller batches"}, 413)

    def authed() -> str:
        body = request.get_data(cache=True)
        path = request.full_path.rstrip("?")
        g.nonce = request.headers.get(protocol.H_NONCE, "")
        return hub.authenticate(request.method, path, request.headers, body, now=now())

    def signed(doc: dict, status: int = 200) -> Response:
        body = json.dumps({**doc, "hub_time": now_iso(now())}, ensure_ascii=False).encode()
        resp = Response(body, status, content_type="application/json")
        resp.headers[protocol.H_SIG] = hub.sign_response(g.nonce, body)
        return resp

    @app.post("/v1/enroll")
    def enroll():
        data = request.get_json(silent=True, force=True)
        body, sig = enrollment.enroll(hub, ca, data if isinstance(data, dict) else {}, now=now(),
                                      forbidden=set(server_names))
        return Response(body, 200, content_type="application/json", headers={protocol.H_SIG: sig})

    @app.post("/v1/hello")
    def hello():
        node = authed()
        status = request.get_json(silent=True, force=True)
        csr = status.pop("csr", None) if isinstance(status, dict) else None   # renewal (docs/tls.md)
        text = json.dumps(status if isinstance(status, dict) else {}, ensure_ascii=False)
        if len(text) > 16000:   # keep what the dashboard shows rather than cutting JSON in half
            text = json.dumps({k: status.get(k) for k in STATUS_KEYS}, ensure_ascii=False)[:16000]
        hub.store.touch(node, now=now(), status=text)
        renewal = enrollment.renew(ca, node, csr, now=now(), forbidden=set(server_names))
        return signed({"node": node, **renewal})

    @app.get("/v1/uploads/<batch_id>")
    def upload_offset(batch_id: str):
        node = authed()
        total = request.args.get("total", type=int) or 0
        receipt = hub.store.batch_receipt(node, batch_id)
        if receipt:
            return signed({"receipt": json.loads(receipt)})
        return signed({"offset": hub.store.received_offset(node, batch_id, total)})

    @app.put("/v1/uploads/<batch_id>")
    def upload_chunk(batch_id: str):
        node = authed()
        offset = request.args.get("offset", type=int)
        total = request.args.get("total", type=int)
        data = request.get_data()
        if offset is None or total is None or offset < 0 or total <= 0 or offset + len(data) > total:
            return signed({"error": "offset and total are required and must fit the data"}, 400)
        receipt = hub.store.batch_receipt(node, batch_id)
        if receipt:
            return signed({"receipt": json.loads(receipt)})
        if total > hub.max_batch_bytes:
            raise TooLarge(f"batch of {total} bytes is larger than {hub.max_batch_bytes}; send smaller batches")
        have = hub.store.received_offset(node, batch_id, total)
        if offset > have:
            return signed({"error": "chunk out of order", "offset": have}, 409)
        if offset + len(data) > have:
            hub.store.add_chunk(node, batch_id, offset, data, total, now=now())
            have = hub.store.received_offset(node, batch_id, total)
        hub.store.touch(node, now=now())
        if have < total:
            return signed({"offset": have})
        raw = hub.store.assembled(node, batch_id, total)
        try:
            receipt = hub.accept_batch(raw, via="upload", now=now(), sender=node)
        except (HubError, protocol.ProtocolError):
            with hub.store.begin() as c:   # start this upload again from zero next time
                hub.store.drop_chunks(c, node, batch_id)
            raise
        return signed({"receipt": receipt})

    @app.post("/v1/pull")
    def pull():
        node = authed()
        data = request.get_json(silent=True, force=True) or {}
        cursor, limit = data.get("cursor", 0), data.get("limit", 200)
        if not isinstance(cursor, int) or not isinstance(limit, int) or not 0 < limit <= 1000:
            return signed({"error": "cursor and limit (1-1000) must be integers"}, 400)
        return signed(hub.pull(node, cursor, limit))

    @app.get("/v1/bundles/<sha256>")
    def bundle_bytes(sha256: str):
        """The bytes of a published update bundle, for an enrolled node; Range resumes a download."""
        from . import bundles

        authed()
        path = hub.bundle_dir / f"{sha256}.bundle" if hub.bundle_dir and bundles.SHA_RE.fullmatch(sha256) else None
        if path is None or not path.is_file():
            return _json({"error": f"no bundle {sha256} on this hub"}, 404)
        size = path.stat().st_size
        try:
            span = bundles.byte_range(request.headers.get("Range"), size)
        except ValueError as e:
            return Response(str(e), 416, headers={"Content-Range": f"bytes */{size}"})
        start, end = span or (0, size)
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        resp = Response(data, 206 if span else 200, content_type="application/octet-stream")
        resp.headers["Accept-Ranges"] = "bytes"
        if span:
            resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return resp

    @app.get("/healthz")
    def healthz():
        return _json({"ok": True, "hub_pubkey": hub.pubkey})

    @app.get("/")
    def dashboard():
        from .dashboard import node_rows

        return render_template("dashboard.html", nodes=node_rows(hub.store, now()), now=now_iso(now()))

    return app


def _json(doc: dict, status: int = 200) -> Response:
    return Response(json.dumps(doc, ensure_ascii=False), status, content_type="application/json")
