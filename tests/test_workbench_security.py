"""Accounts and safety of the workbench, through the real Flask app and a real SQLite store."""
import re
import shutil
import sqlite3
from datetime import datetime, timezone

import pytest

from edge.core import accounts, audit, config as config_mod, residents
from edge.core.node import Node
from edge.web import create_app
from tests.conftest import clinic_edge

NOW = datetime.now(timezone.utc)


@pytest.fixture
def app(node):
    accounts.add(node.store, "doc", "doctor-pass-1", role="doctor", now=NOW)
    accounts.add(node.store, "boss", "admin-pass-1", role="admin", now=NOW)
    return create_app(node=node)


def token(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def login(client, user="doc", password="doctor-pass-1"):
    r = client.post("/login", data={"username": user, "password": password, "csrf_token": token(client)})
    assert r.status_code == 303, r.text
    return client


def test_pages_and_api_need_a_login(app):
    c = app.test_client()
    assert c.get("/").status_code == 302 and "/login" in c.get("/").location
    assert c.get("/api/v1/readings").status_code == 401
    assert c.get("/healthz").status_code == 200 and c.get("/healthz").json["ok"]   # county IT's probe stays open


def test_session_cookie_is_httponly_and_samesite(app):
    c = app.test_client()
    r = c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": token(c)})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_form_post_without_csrf_token_is_refused(app, node):
    c = login(app.test_client())
    r = c.post("/residents/new", data={"name": "张三", "sex": "1", "birth_date": "1950-01-01"})
    assert (r.status_code, r.location) == (303, "/")            # back to a page, saying why
    assert '<p class="flash flash-error" role="status">表单已过期或来源不明，请刷新页面后重试。</p>' in c.get("/").text
    assert node.store.scalar("SELECT count(*) FROM residents") == 0
    r = c.post("/api/v1/residents", json={"name": "张三", "sex": "1", "birth_date": "1950-01-01"})
    assert r.status_code == 400 and r.json["error"] == "csrf"
    r = c.post("/api/v1/residents", json={"name": "张三", "sex": "1", "birth_date": "1950-01-01"},
               headers={"X-CSRFToken": token(c, "/")})
    assert r.status_code == 201 and r.json["health_record_no"].startswith("110105001001")


def test_doctor_cannot_reach_admin_pages_admin_can(app):
    doc = login(app.test_client())
    assert doc.get("/admin/users").status_code == 403
    assert doc.post("/admin/users/doc/disable", data={"csrf_token": token(doc, "/")}).status_code == 403
    assert "/admin/users" not in doc.get("/").text
    boss = login(app.test_client(), "boss", "admin-pass-1")
    assert boss.get("/admin/users").status_code == 200


def test_html_in_a_name_is_shown_as_text(app, node):
    rid = residents.create(node.store, {"name": "<script>alert(1)</script>", "sex": "1", "birth_date": "1950-01-01"},
                           division_code="110105001001", now=NOW, actor="doc")
    c = login(app.test_client())
    page = c.get(f"/residents/{rid}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in c.get("/?q=%3Cscript").text


def test_invalid_id_number_gets_a_message_next_to_the_field_and_saves_nothing(app, node):
    c = login(app.test_client())
    r = c.post("/residents/new", data={"name": "张三", "id_number": "360426199101010072", "phone": "12",
                                       "csrf_token": token(c, "/residents/new")})
    assert r.status_code == 422
    assert re.search(r'id="err-id_number">身份证号校验位不正确', r.text)
    assert 'id="err-phone"' in r.text
    assert node.store.scalar("SELECT count(*) FROM residents") == 0


def test_repeated_failed_logins_are_throttled(app):
    c = app.test_client()
    for _ in range(accounts.MAX_FAILURES):
        r = c.post("/login", data={"username": "doc", "password": "wrong", "csrf_token": token(c)})
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": token(c)})
    assert r.status_code == 401 and "登录失败次数过多" in r.text


def test_disabled_account_cannot_log_in(app, node):
    accounts.set_disabled(node.store, "doc", True, now=NOW)
    c = app.test_client()
    r = c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": token(c)})
    assert r.status_code == 401


def test_idle_session_is_logged_out(app):
    c = login(app.test_client())
    assert c.get("/").status_code == 200
    with c.session_transaction() as s:
        s["seen"] = s["seen"] - 31 * 60
    r = c.get("/")
    assert r.status_code == 302 and "/login" in r.location


def test_passwords_are_stored_as_argon2id(node):
    accounts.add(node.store, "doc", "doctor-pass-1", now=NOW)
    h = node.store.scalar("SELECT password_hash FROM users WHERE username = 'doc'")
    assert h.startswith("$argon2id$") and "doctor-pass-1" not in h


def tampered_copy(node, tmp_path, sql: str):
    rid = residents.create(node.store, {"name": "张三", "sex": "1", "birth_date": "1950-01-01"},
                           division_code="110105001001", now=NOW, actor="doc")
    residents.update(node.store, rid, {"name": "张三", "sex": "1", "birth_date": "1950-01-01", "phone": "13800138000"},
                     now=NOW, actor="doc")
    assert audit.verify(node.store.conn).ok
    node.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "tampered.db"
    shutil.copyfile(node.store.path, copy)
    raw = sqlite3.connect(copy)
    raw.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;" + sql)
    raw.commit()
    raw.close()
    return copy


@pytest.mark.parametrize("sql,broken", [
    ("UPDATE audit SET after = replace(after, '13800138000', '13999999999') WHERE action = 'resident.update'",
     "was changed"),
    ("DELETE FROM audit WHERE action = 'resident.create'", "missing"),
])
def test_audit_chain_detects_an_edited_or_deleted_row(node, tmp_path, env, sql, broken):
    copy = tampered_copy(node, tmp_path, sql)
    out = clinic_edge({**env, "CLINIC_EDGE_STORE_PATH": str(copy)}, "audit", "verify", check=False)
    assert out.returncode == 1 and "BROKEN at entry" in out.stderr and broken in out.stderr
    ok = clinic_edge(env, "audit", "verify")
    assert "intact" in ok.stdout


# --- regression tests for what is blocked today (issue 14): every route, every field, every role ---

PARAMS = {"resident_id": "r-1", "reading_id": "x-1", "followup_id": "f-1", "form": "htn", "period": "2026-01",
          "disease": "htn", "conflict_id": "1", "username": "doc", "station": "bp", "check_id": "c-1",
          "session_id": "1"}


def state_changing_routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & {"POST", "PUT", "DELETE", "PATCH"}):
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: PARAMS[m.group(1)], rule.rule)
            yield method, path, rule.endpoint


def snapshot(node):
    return (node.store.scalar("SELECT count(*) FROM audit"), node.store.scalar("SELECT count(*) FROM outbox"),
            node.store.query("SELECT username, password_hash, disabled_at, session_generation FROM users"),
            node.store.scalar("SELECT count(*) FROM residents"))


def test_every_state_changing_route_refuses_a_request_without_the_csrf_token(app, node):
    boss = login(app.test_client(), "boss", "admin-pass-1")
    before = snapshot(node)
    routes = list(state_changing_routes(app))
    assert len(routes) >= 25                              # the url_map, not a hand-kept list
    for method, path, endpoint in routes:
        r = boss.open(path, method=method, data={"name": "张三", "reason": "原因写在这里"})
        if path.startswith("/api/"):
            assert r.status_code == 400 and r.json["error"] == "csrf", (endpoint, r.status_code)
        else:
            with boss.session_transaction() as s:
                flashes = [m for _cat, m in s.pop("_flashes", [])]
            assert r.status_code == 303 and any("表单已过期" in m for m in flashes), (endpoint, r.status_code)
    assert snapshot(node) == before
    assert boss.get("/").status_code == 200               # still logged in: logout refused too


XSS = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def test_html_in_every_field_a_person_can_set_is_shown_as_text(app, node):
    from edge.core import devices, measuring
    from edge.core.ingest import ingest
    from edge.core.reading import Reading

    accounts.add(node.store, "evil", "evil-pass-12", display_name=XSS[:40], now=NOW)
    rid = residents.create(node.store, {"name": XSS[:50], "sex": "1", "birth_date": "1950-01-01", "address": XSS},
                           division_code="110105001001", now=NOW, actor="doc")
    devices.add(node.store, "bp-1", kind="bp", name=XSS[:40], now=NOW)
    readings = ingest(node.store, [Reading("bp-1", "8480-6", 120, "mm[Hg]", "mqtt", device_time=NOW)])
    measuring.assign(node.store, [readings[0].id], rid, now=NOW, actor="doc")
    measuring.void_reading(node.store, readings[0].id, XSS, now=NOW, actor="doc")
    other = residents.create(node.store, {"name": "李四", "sex": "1", "birth_date": "1950-01-01"},
                             division_code="110105001001", now=NOW, actor="doc")
    residents.void(node.store, other, XSS, now=NOW, actor="doc")
    boss = login(app.test_client(), "boss", "admin-pass-1")
    evil = login(app.test_client(), "evil", "evil-pass-12")
    pages = {"/": evil, "/?q=%22%3E%3Cimg": boss, f"/residents/{rid}": boss, f"/residents/{rid}/edit": boss,
             f"/residents/{other}": boss, "/admin/users": boss, "/readings": boss, "/inbox": boss}
    for path, client in pages.items():
        page = client.get(path).text
        assert "<img src=x" not in page and "<script>alert(2)" not in page, path
    assert "&lt;img src=x onerror=alert(1)&gt;" in boss.get(f"/residents/{rid}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in boss.get("/admin/users").text


def test_a_doctor_can_do_no_admin_action(app, node):
    doc = login(app.test_client())
    csrf = token(doc, "/")
    before = snapshot(node)
    admin_routes = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("admin.")]
    assert len(admin_routes) >= 4
    for rule in admin_routes:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"username": "boss"}.get(m.group(1), "x"), rule.rule)
        for method in sorted(rule.methods & {"GET", "POST"}):
            r = doc.open(path, method=method, data={"csrf_token": csrf, "username": "mole", "role": "admin"})
            assert r.status_code == 403, (rule.endpoint, method, r.status_code)
    assert snapshot(node) == before
    assert accounts.by_username(node.store, "mole") is None and not accounts.by_username(node.store, "boss").disabled
