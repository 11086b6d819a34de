"""A county platform for the forwarding tests: a real HTTP server on loopback (a thread) that
takes FHIR transaction Bundles at /fhir and CDA documents at /cda, as a platform does.

It honours conditional creates (an entry whose ifNoneExist matches a stored resource creates
nothing) and keys CDA documents on their 文档流水号, so `created` counts what it stored: a resend
shows as a second request, never a second resource. It refuses (422 with an OperationOutcome) any
document about a patient whose ID number is in `refuse`, answers 503 to the next `fail_next`
requests, and with `hold_at = n` stores the n-th request, then waits for `release` before
answering (so a test can kill the sender while the platform already has the document)."""
from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lxml import etree

V3 = {"v3": "urn:hl7-org:v3"}


class Platform:
    def __init__(self):
        self.refuse: set[str] = set()
        self.fail_next = 0
        self.hold_at: int | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        self.requests: list[str] = []           # each request's document id, in arrival order
        self.created: Counter = Counter()       # (resource type or "cda", business identifier) -> times stored
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Platform":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, answer = platform.take(self.path, body, self.headers.get("X-Document-Id", ""))
                if platform.hold_at is not None and len(platform.requests) == platform.hold_at:
                    platform.held.set()
                    platform.release.wait(30)
                data = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:         # the sender was killed while we held its answer
                    pass

        return Handler

    def take(self, path: str, body: bytes, doc_id: str) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(doc_id)
            if self.fail_next:
                self.fail_next -= 1
                return 503, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "transient", "diagnostics": "平台维护中 platform busy"}]}
            if path == "/fhir":
                return self._bundle(json.loads(body))
            return self._cda(body)

    def _refused(self, id_number: str) -> tuple[int, dict]:
        return 422, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "business-rule",
                     "diagnostics": f"身份证号 {id_number} 未在平台建档 (no health record for this ID number)"}]}

    def _bundle(self, bundle: dict) -> tuple[int, dict]:
        for e in bundle["entry"]:
            for ident in e["resource"].get("identifier", []) if e["resource"]["resourceType"] == "Patient" else []:
                if ident["value"] in self.refuse:
                    return self._refused(ident["value"])
        out = []
        for e in bundle["entry"]:
            # a conditional create's ifNoneExist, or a conditional update's search (PUT Patient?identifier=...)
            key = (e["resource"]["resourceType"], e["request"].get("ifNoneExist") or e["request"]["url"].split("?")[-1])
            if e["request"]["method"] == "POST" and self.created[key]:
                out.append({"response": {"status": "200 OK"}})
                continue
            if not self.created[key]:
                self.created[key] += 1
            out.append({"response": {"status": "201 Created"}})
        return 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": out}

    def _cda(self, body: bytes) -> tuple[int, dict]:
        t = etree.fromstring(body)
        id_number = (t.xpath("//v3:patient/v3:id/@extension", namespaces=V3) or [""])[0]
        if id_number in self.refuse:
            return self._refused(id_number)
        key = ("cda", t.xpath("/v3:ClinicalDocument/v3:id/@extension", namespaces=V3)[0])
        if not self.created[key]:
            self.created[key] += 1
        return 200, {"stored": key[1]}
