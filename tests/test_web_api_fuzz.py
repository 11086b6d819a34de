"""Malformed input to the node's web API is a 4xx with a reason, never a 500, and the body limit is
a readable 413 (issue 14 item 4, the node's part). Hypothesis against the real Flask app and a real
SQLite store; the body limit also through the real server (cheroot)."""
import json
import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.core import accounts, residents
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.web import create_app
from edge.web.limits import MAX_BODY
from tests.live_web import LiveServer

NOW = datetime.now(timezone.utc)
FIELDS = ["name", "sex", "birth_date", "id_number", "phone", "address", "htn", "t2dm", "version", "reason",
          "minutes", "resident_id", "reading_ids", "htn_diagnosed_on", "contract_signed"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
bodies = st.one_of(
    st.binary(max_size=200),                                            # not JSON at all
    json_values.map(lambda v: json.dumps(v).encode()),                  # JSON, any shape
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),         # nested far too deep
    st.integers(1, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)


@pytest.fixture
def api(node):
    accounts.add(node.store, "doc", "doctor-pass-1", role="doctor", now=NOW)
    rid = residents.create(node.store, {"name": "张三", "sex": "1", "birth_date": "1950-01-01"},
                           division_code="110105001001", now=NOW, actor="doc")
    app = create_app(node=node)
    c = app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": csrf}).status_code == 303
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/").text).group(1)
    return app, c, {"X-CSRFToken": token}, rid


def routes_with_bodies(app, rid):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods & {"POST", "PUT", "DELETE"}):
            path = rule.rule.replace("<resident_id>", rid).replace("<reading_id>", "r-1")
            yield method, path


def assert_refused_with_a_reason(r):
    assert 400 <= r.status_code < 500 or r.status_code in (200, 201), (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.is_json and (r.json.get("message") or r.json.get("errors")), r.text[:300]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1"]))
def check_every_route(api, body, content_type):
    app, c, headers, rid = api
    for method, path in routes_with_bodies(app, rid):
        r = c.open(path, method=method, data=body, headers={**headers, "Content-Type": content_type})
        assert_refused_with_a_reason(r)


def test_malformed_bodies_get_a_4xx_with_a_reason_on_every_api_route(api):
    check_every_route(api)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=st.dictionaries(st.sampled_from(["limit", "after", "q"]),
                              st.text(max_size=12) | st.integers(-2**70, 2**70).map(str), max_size=3))
def check_query_parameters(api, params):
    app, c, _headers, rid = api
    for path in ("/api/v1/residents", f"/api/v1/residents/{rid}/readings", "/api/v1/readings", "/readings"):
        r = c.get(path, query_string=params)
        assert r.status_code < 500, (path, params, r.status_code)


def test_malformed_query_parameters_never_give_a_500(api):
    check_query_parameters(api)


def test_a_body_over_the_limit_is_a_readable_413(api):
    _app, c, headers, _rid = api
    r = c.post("/api/v1/residents", data=b" " * (MAX_BODY + 1), headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json["error"] == "too_large" and "KiB" in r.json["message"]
    r = c.post("/residents/new", data={"name": "x" * (MAX_BODY + 1)})
    assert r.status_code == 413 and "未被接受" in r.text


def test_the_real_server_cuts_a_huge_body_before_reading_it(node):
    with LiveServer(node) as web:
        r = web.client().request("POST", "/login", body=b"x" * (MAX_BODY + 1),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 413 and "未被接受" in r.text
        r = web.client().request("POST", "/login", body=None,
                                 headers={"Content-Type": "application/json", "Content-Length": str(400 << 20)})
        assert r.status == 413
