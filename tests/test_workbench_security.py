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
    assert c.get("/healthz").status_code in (200, 503)   # county IT's probe stays open


def test_session_cookie_is_httponly_and_samesite(app):
    c = app.test_client()
    r = c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": token(c)})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_form_post_without_csrf_token_is_refused(app, node):
    c = login(app.test_client())
    r = c.post("/residents/new", data={"name": "张三", "sex": "1", "birth_date": "1950-01-01"})
    assert r.status_code in (400, 303)
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
