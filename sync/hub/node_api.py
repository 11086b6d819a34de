"""The API enrolled nodes call: enroll, hello, resumable uploads, downlink pulls, bundle bytes.

Every call but enroll is signed by the node (Hub.authenticate) and every answer to a signed call
is signed by the hub over the request's nonce (protocol.response_bytes)."""
from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from sync import protocol, record_codec, signing
from . import status as node_status
from .service import ClockSkew, HubError, TooLarge
from .storage import now_iso

bp = Blueprint("node_api", __name__)
NODE_PATHS = ("/v1/", "/v2/")   # the node API's prefixes: signed per request, no session (web.py)
BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_CURSOR = 2 ** 62


def _hub():
    return current_app.extensions["clinic_edge_hub"]


def _now():
    return _hub()[1]()


def authed() -> str:
    hub = _hub()[0]
    body = request.get_data(cache=True)
    path = request.full_path.rstrip("?")
    auth = protocol.request_auth(request.headers)
    g.nonce, g.suite = auth[1], signing.text_suite(auth[3])   # the answer is signed in the request's suite
    row = hub.signed_by(request.method, path, request.headers, body, now=_now())
    g.node, g.node_key = row["name"], row["pubkey"]
    return g.node


def signed(doc: dict, status: int = 200, *, downlink: bool = True) -> Response:
    """A JSON answer signed over the request's nonce, with the hub's time and, for an
    authenticated node, its newest downlink cursor (docs/api.md)."""
    hub = _hub()[0]
    extra = {"hub_time": now_iso(_now())}
    if downlink and g.get("node"):     # a pull's own answer says it with its cursor
        extra["downlink"] = hub.store.downlink_head(g.node)
    body = json.dumps({**doc, **extra}, ensure_ascii=False, separators=(",", ":")).encode()
    resp = Response(body, status)
    del resp.headers["Content-Type"]      # always JSON, and the node knows: 32 bytes less per answer
    resp.headers[protocol.H_SIG] = hub.sign_response(g.nonce, body, g.get("suite", signing.DEFAULT_SUITE))
    return resp


def error_answer(e: HubError) -> Response:
    from .app import json_answer

    if isinstance(e, ClockSkew):   # signed, with hub_time: the node corrects its offset and retries
        return signed({"error": str(e), "clock": "skew"}, e.status)
    return json_answer({"error": str(e)}, e.status)


def json_body() -> Any:
    """The request body as JSON, or a 400 that says why (never a 500 for a deep or broken body)."""
    data = request.get_data(cache=True)
    try:
        record_codec.check_json_size(data, max_values=20000)
        return json.loads(data) if data else None
    except protocol.TooBig as e:
        raise HubError(f"request body: {e}") from e
    except RecursionError as e:
        raise HubError("request body is JSON nested too deeply") from e
    except ValueError as e:
        raise HubError(f"request body is not JSON: {e}") from e


def _batch_id(batch_id: str) -> str:
    if not BATCH_ID.fullmatch(batch_id):
        raise HubError("a batch id is 1-64 letters, digits, '_' or '-'")
    return batch_id


def _ca():
    return current_app.extensions["clinic_edge_hub_ca"]


@bp.post("/v1/enroll")
def enroll():
    """Signed by the hub key over the node's nonce, with the county CA and the node's certificate
    (sync.hub.enrollment, docs/tls.md)."""
    from . import enrollment

    data = json_body()
    if not isinstance(data, dict) or not isinstance(data.get("code"), str) or not isinstance(data.get("pubkey"), str):
        raise HubError("send {code, pubkey, nonce, csr}")
    ca, names = _ca()
    body, sig = enrollment.enroll(_hub()[0], ca, data, now=_now(), forbidden=set(names))
    return Response(body, 200, content_type="application/json", headers={protocol.H_SIG: sig})


@bp.post("/v1/hello")
def hello():
    hub = _hub()[0]
    node = authed()
    from . import enrollment

    report = json_body()
    report = report if isinstance(report, dict) else {}
    csr = report.pop("csr", None)          # certificate renewal (docs/tls.md)
    clean = node_status.clean(report)
    hub.store.touch(node, now=_now(), status=json.dumps(clean, ensure_ascii=False))
    anchor = hub.audit_head(node, report.get("audit"), now=_now())
    ca, names = _ca()
    renewal = enrollment.renew(ca, node, csr, now=_now(), forbidden=set(names))
    return signed({"node": node, **anchor, **renewal})


class _Answers:
    """How the answers of an upload are written. /v1/uploads/ (nodes before issue 17.4): the full
    receipt, a signed document of its own, inside an answer signed over the nonce, with hub_time
    and "downlink". /v2/u/ (protocol.receipt_bytes): {"r": compact receipt} or {"o": offset}, and
    "d" for the downlink head, under one signature that binds the node and the batch."""

    def __init__(self, compact: bool, batch_id: str):
        self.compact, self.batch_id = compact, batch_id
        self.offset_arg, self.total_arg = ("o", "t") if compact else ("offset", "total")

    def receipt(self, receipt: dict) -> Response:
        if self.compact:
            return self._compact({"r": protocol.compact_receipt(receipt)})
        return signed({"receipt": _hub()[0].full_receipt(receipt)})

    def offset(self, have: int, status: int = 200, error: str | None = None) -> Response:
        err = {"error": error} if error else {}
        if self.compact:
            return self._compact({**err, "o": have}, status)
        return signed({**err, "offset": have}, status)

    def error(self, error: str, status: int) -> Response:
        return self._compact({"error": error}, status) if self.compact else signed({"error": error}, status)

    def _compact(self, doc: dict, status: int = 200) -> Response:
        hub = _hub()[0]
        body = json.dumps({**doc, "d": hub.store.downlink_head(g.node)}, ensure_ascii=False,
                          separators=(",", ":")).encode()
        resp = Response(body, status)
        del resp.headers["Content-Type"]
        resp.headers[protocol.H_SIG] = hub.sign_receipt_answer(g.node, self.batch_id, g.nonce, body,
                                                               g.get("suite", signing.DEFAULT_SUITE))
        return resp


@bp.get("/v1/uploads/<batch_id>")
def upload_offset(batch_id: str):
    return _offset(_Answers(False, batch_id))


@bp.get("/v2/u/<batch_id>")
def compact_upload_offset(batch_id: str):
    return _offset(_Answers(True, batch_id))


@bp.put("/v1/uploads/<batch_id>")
def upload_chunk(batch_id: str):
    return _chunk(_Answers(False, batch_id))


@bp.put("/v2/u/<batch_id>")
def compact_upload_chunk(batch_id: str):
    return _chunk(_Answers(True, batch_id))


def _offset(answers: _Answers) -> Response:
    hub = _hub()[0]
    node = authed()
    _batch_id(answers.batch_id)
    total = request.args.get(answers.total_arg, type=int) or 0
    receipt = hub.store.batch_receipt(node, answers.batch_id)
    if receipt:
        return answers.receipt(json.loads(receipt))
    return answers.offset(hub.store.received_offset(node, answers.batch_id, total))


def _chunk(answers: _Answers) -> Response:
    hub = _hub()[0]
    node = authed()
    batch_id = _batch_id(answers.batch_id)
    offset = request.args.get(answers.offset_arg, type=int)
    total = request.args.get(answers.total_arg, type=int)
    data = request.get_data()
    if offset is None or total is None or offset < 0 or total <= 0 or offset + len(data) > total:
        return answers.error(f"{answers.offset_arg} and {answers.total_arg} are required and must fit the data", 400)
    receipt = hub.store.batch_receipt(node, batch_id)
    if receipt:
        return answers.receipt(json.loads(receipt))
    if total > hub.max_batch_bytes:
        raise TooLarge(f"batch of {total} bytes is larger than {hub.max_batch_bytes}; send smaller batches")
    whole = offset == 0 and len(data) == total
    if whole:
        raw = data        # the whole batch in one request: straight to the records, no chunk rows
    else:
        raw = _resumed(hub, answers, node, offset, data, total)
        if isinstance(raw, Response):
            return raw
    try:
        receipt = hub.accept_batch(raw, via="upload", now=_now(), sender=node, sender_key=g.node_key,
                                   unstored=True, whole=whole)
    except (HubError, protocol.ProtocolError):
        with hub.store.begin() as c:   # start this upload again from zero next time
            hub.store.drop_chunks(c, node, batch_id)
        raise
    return answers.receipt(receipt)


def _resumed(hub, answers: _Answers, node: str, offset: int, data: bytes, total: int) -> bytes | Response:
    """Keep one chunk of a resumable upload; the whole batch once every chunk is in, else the
    answer to send (the offset to go on from, or 409 for a chunk out of order)."""
    batch_id = answers.batch_id
    have = hub.store.received_offset(node, batch_id, total)
    if offset > have:
        return answers.offset(have, 409, "chunk out of order")
    if offset + len(data) > have:
        hub.store.add_chunk(node, batch_id, offset, data, total, now=_now())
        have = hub.store.received_offset(node, batch_id, total)
    if have < total:
        return answers.offset(have)
    raw = hub.store.assembled(node, batch_id, total)
    if len(raw) < total:      # another worker stored this batch from the same chunks and dropped them
        receipt = hub.store.batch_receipt(node, batch_id)
        return answers.receipt(json.loads(receipt)) if receipt else \
            answers.offset(hub.store.received_offset(node, batch_id, total))
    return raw


@bp.post("/v1/pull")
def pull():
    hub = _hub()[0]
    node = authed()
    data = json_body()
    data = data if isinstance(data, dict) else {}
    cursor, limit = data.get("cursor", 0), data.get("limit", 200)
    if not isinstance(cursor, int) or not isinstance(limit, int) or not 0 < limit <= 1000 \
            or not 0 <= cursor < MAX_CURSOR:
        return signed({"error": "cursor (>= 0) and limit (1-1000) must be integers"}, 400)
    return signed(hub.pull(node, cursor, limit), downlink=False)


@bp.get("/v1/bundles/<sha256>")
def bundle_bytes(sha256: str):
    """The bytes of a published update bundle, for an enrolled node; Range resumes a download."""
    from . import bundles
    from .app import json_answer

    hub = _hub()[0]
    authed()
    path = hub.bundle_dir / f"{sha256}.bundle" if hub.bundle_dir and bundles.SHA_RE.fullmatch(sha256) else None
    if path is None or not path.is_file():
        return json_answer({"error": f"no bundle {sha256} on this hub"}, 404)
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


@bp.get("/healthz")
def healthz():
    from .app import json_answer

    admission = current_app.extensions["clinic_edge_admission"].health()
    ok = admission["shedding"] != "all"     # not "ok" while turning away every upload (sync.hub.admission)
    return json_answer({"ok": ok, "hub_pubkey": _hub()[0].pubkey, "admission": admission}, 200 if ok else 503)
