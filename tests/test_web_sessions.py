"""Sessions can be ended (issue 14 item 1): a copied session cookie stops working after logout, a
new password, disabling, "log out everywhere", the absolute lifetime, and from another computer.
Real cheroot on loopback, real HTTP, the real `clinic-edge user` command line."""
from datetime import timedelta

import pytest

from edge.core import accounts
from tests.conftest import clinic_edge
from tests.live_web import LiveServer, SettableClock


@pytest.fixture
def web(node):
    accounts.add(node.store, "doc", "doctor-pass-1", role="doctor", now=node.clock.now())
    accounts.add(node.store, "boss", "admin-pass-1", role="admin", now=node.clock.now())
    node.clock = SettableClock(node.clock)
    with LiveServer(node) as server:
        yield server


def logged_in(web, user="doc", password="doctor-pass-1", source="127.0.0.1"):
    c = web.client(source)
    assert c.log_in(user, password).status == 303
    assert c.get("/").status == 200
    return c


def gets_the_login_page(c) -> bool:
    r = c.get("/")
    return r.status == 302 and r.location.startswith("/login")


def test_a_copied_cookie_is_refused_after_logout(web):
    doc = logged_in(web)
    stolen = doc.copy()
    assert stolen.get("/").status == 200
    r = doc.post("/logout", {"csrf_token": doc.token("/")})
    assert r.status == 303 and gets_the_login_page(doc)
    assert gets_the_login_page(stolen)
    assert gets_the_login_page(stolen.copy())       # and it stays refused


@pytest.mark.parametrize("command", [["passwd", "doc", "--password-stdin"], ["disable", "doc"],
                                     ["logout-all", "doc"]])
def test_a_copied_cookie_is_refused_after_the_user_command(web, env, command):
    stolen = logged_in(web).copy()
    clinic_edge(env, "user", *command, input="a-new-password-2\n")
    assert gets_the_login_page(stolen)


def test_the_admin_logs_a_user_out_everywhere_from_the_users_page(web, node):
    tablet, pc = logged_in(web), logged_in(web, source="127.0.0.3")
    boss = logged_in(web, "boss", "admin-pass-1")
    assert "/admin/users/doc/logout-all" in boss.get("/admin/users").text
    r = boss.post("/admin/users/doc/logout-all", {"csrf_token": boss.token("/admin/users")})
    assert r.status == 303 and "doc 已在所有设备上退出登录" in boss.get("/admin/users").text
    assert gets_the_login_page(tablet) and gets_the_login_page(pc)
    assert boss.get("/").status == 200
    assert node.store.scalar("SELECT count(*) FROM audit WHERE action = 'user.logout_all'") == 1
    assert logged_in(web).get("/").status == 200     # logging in again works


def test_a_doctor_cannot_log_others_out(web):
    doc, boss = logged_in(web), logged_in(web, "boss", "admin-pass-1")
    assert doc.post("/admin/users/boss/logout-all", {"csrf_token": doc.token("/")}).status == 403
    assert boss.get("/").status == 200


def test_a_busy_session_still_ends_after_session_hours(web, node):
    doc = logged_in(web)
    hours = node.config["web"]["session_hours"]
    for _ in range(hours * 60 // 25 - 1):           # a request every 25 minutes: never idle
        node.clock.advance(timedelta(minutes=25))
        assert doc.get("/").status == 200
    node.clock.advance(timedelta(minutes=60))
    r = doc.get("/api/v1/measuring")
    assert r.status == 401
    assert gets_the_login_page(doc)


def test_an_idle_session_ends_on_the_server_clock(web, node):
    doc = logged_in(web)
    node.clock.advance(timedelta(minutes=node.config["web"]["idle_minutes"] + 1))
    r = doc.get("/")
    assert r.status == 302 and r.location.startswith("/login")
    assert "分钟无操作" in doc.get(r.location).text


def test_a_cookie_copied_to_another_computer_is_refused(web):
    doc = logged_in(web)
    assert gets_the_login_page(doc.copy(source="127.0.0.2"))
    assert doc.get("/").status == 200               # the doctor's own session goes on
