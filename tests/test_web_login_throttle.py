"""Log-in lock-out is not a weapon (issue 14 item 2): the throttle counts per (name, client address)
before the password is checked, so a flood gets at most the limit evaluated, and the admin still
logs in from the clinic PC while another address guesses. Real cheroot (the server `clinic-edge serve` runs), real sockets; the other
computer is another loopback address (the whole of 127.0.0.0/8 is loopback)."""
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from edge.core import accounts, login_throttle
from tests.live_web import LiveServer, SettableClock

WRONG = "用户名或密码错误"
THROTTLED = "登录失败次数过多"


@pytest.fixture
def web(node):
    accounts.add(node.store, "boss", "admin-pass-1", role="admin", now=node.clock.now())
    node.clock = SettableClock(node.clock)
    with LiveServer(node, threads=8) as server:
        yield server


def guess(web, source="127.0.0.1", password="wrong-guess"):
    return web.client(source).log_in("boss", password)


def test_forty_parallel_guesses_get_at_most_the_limit_checked(web, node):
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: guess(web), range(40)))
    assert all(r.status == 401 for r in answers)
    evaluated = [r for r in answers if WRONG in r.text]
    assert len(evaluated) <= accounts.MAX_FAILURES
    assert len([r for r in answers if THROTTLED in r.text]) == 40 - len(evaluated)
    assert login_throttle.checks(node.store.conn, "boss", "127.0.0.1") <= accounts.MAX_FAILURES


def test_the_admin_logs_in_from_the_clinic_pc_during_an_attack(web):
    with ThreadPoolExecutor(8) as pool:
        attack = [pool.submit(guess, web, "127.0.0.9") for _ in range(30)]
        clinic_pc = web.client("127.0.0.2")
        r = clinic_pc.log_in("boss", "admin-pass-1")
        assert r.status == 303, r.text
        assert clinic_pc.get("/admin/users").status == 200
        assert all(f.result().status == 401 for f in attack)
    r = guess(web, "127.0.0.9", "admin-pass-1")         # the attacker's address stays refused,
    assert r.status == 401 and THROTTLED in r.text       # even with the right password


def test_the_delay_doubles_and_a_success_resets_it(web, node):
    for _ in range(accounts.MAX_FAILURES):
        assert WRONG in guess(web).text
    r = guess(web)
    assert THROTTLED in r.text and "1 分钟" in r.text
    node.clock.advance(timedelta(seconds=61))
    assert WRONG in guess(web).text                       # one more check after the delay ...
    assert THROTTLED in (r := guess(web)).text and "2 分钟" in r.text   # ... then twice as long
    node.clock.advance(timedelta(minutes=2, seconds=1))
    assert guess(web, password="admin-pass-1").status == 303
    assert WRONG in guess(web).text                       # a success starts the count again


def test_delays_grow_to_an_hour_and_no_further():
    free = login_throttle.FREE_TRIES
    assert login_throttle.delay(free - 1, free) is None
    assert [login_throttle.delay(free + i, free) for i in range(3)] == \
        [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert login_throttle.delay(free + 50, free) == timedelta(hours=1)


def admitted(node, name, address, now) -> bool:
    with node.store.atomic() as conn:
        return login_throttle.admit(conn, name, address, now=now) is None


def test_one_address_trying_many_names_is_throttled_too(node):
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    answers = [admitted(node, f"name{i}", "10.0.0.66", now) for i in range(login_throttle.ADDRESS_TRIES + 5)]
    assert answers == [True] * login_throttle.ADDRESS_TRIES + [False] * 5
    assert admitted(node, "doc", "10.0.0.2", now)
    assert admitted(node, "name1", "10.0.0.66", now + timedelta(minutes=1, seconds=1))


def test_failures_are_forgotten_after_a_quiet_day(node):
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    for _ in range(accounts.MAX_FAILURES):
        assert admitted(node, "doc", "10.0.0.5", now)
    assert not admitted(node, "doc", "10.0.0.5", now)
    later = now + login_throttle.FORGET + timedelta(minutes=2)
    assert [admitted(node, "doc", "10.0.0.5", later) for _ in range(accounts.MAX_FAILURES)] == \
        [True] * accounts.MAX_FAILURES


def test_a_new_password_lifts_the_lock_out(node):
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    accounts.add(node.store, "doc", "doctor-pass-1", now=now)
    for _ in range(accounts.MAX_FAILURES):
        assert admitted(node, "doc", "10.0.0.5", now)     # what authenticate counts first
    with pytest.raises(accounts.LoginThrottled):
        accounts.authenticate(node.store, "doc", "doctor-pass-1", address="10.0.0.5", now=now)
    accounts.set_password(node.store, "doc", "doctor-pass-2", now=now)
    assert accounts.authenticate(node.store, "doc", "doctor-pass-2", address="10.0.0.5", now=now)
