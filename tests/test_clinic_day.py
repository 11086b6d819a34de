"""The clinic's day is the clinic's day: before 08:00 Beijing time (the previous day in UTC) a
birth or diagnosis date of today is today; what a Chinese input method types in full-width mode
(digits, X, spaces) is read as plain text. Through the real web app on a real SQLite store."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest

from edge.core import accounts, config as config_mod, idnumber, residents
from edge.core.node import Node
from edge.web import create_app
from conftest import SetClock

# 07:30 on 2 December in Beijing is still 1 December in UTC
EARLY_MORNING = datetime(2026, 12, 1, 23, 30, tzinfo=timezone.utc)
CLINIC_TODAY = "2026-12-02"


@pytest.fixture(scope="module")
def clinic_env(tmp_path_factory):
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    e["CLINIC_EDGE_DATA"] = str(tmp_path_factory.mktemp("clinic-day"))
    return e


@pytest.fixture(scope="module")
def early(clinic_env):
    n = Node(config_mod.load(env=clinic_env), clock=SetClock(EARLY_MORNING, "boot-clinic-day", 100.0))
    yield n
    n.close()


@pytest.fixture(scope="module")
def client(early):
    accounts.add(early.store, "doc", "doctor-pass-1", now=EARLY_MORNING)
    c = create_app(node=early).test_client()
    tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": tok})
    c.token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/residents/new").text).group(1)
    return c


def register(client, **fields):
    return client.post("/residents/new", data={"csrf_token": client.token, **fields})


def saved(node, response) -> dict:
    """The resident a successful registration redirected to (residents are never deleted, so the
    tests of this module share one store)."""
    assert response.status_code == 303, response.text
    rid = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    return node.store.one("SELECT * FROM residents WHERE id = ?", (rid,))


def id_number(seq: int, born: str = "19491231", sex_digit: int = 2) -> str:
    """A valid ID number of Dongcheng (110105) with its own sequence number."""
    first17 = f"110105{born}{seq:02d}{sex_digit}"
    return first17 + idnumber.check_char(first17)


def test_the_clinic_date_is_taken_in_the_clinic_time_zone(clinic_env, early):
    assert early.today() == date(2026, 12, 2)
    utc_clinic = Node(config_mod.load(env={**clinic_env, "CLINIC_EDGE_NODE_TIMEZONE": "UTC"}), clock=early.clock)
    try:
        assert utc_clinic.today() == date(2026, 12, 1)
    finally:
        utc_clinic.close()


def test_a_baby_born_today_is_registered_at_half_past_seven_in_the_morning(client, early):
    r = register(client, name="王小宝", sex="1", birth_date=CLINIC_TODAY)
    assert saved(early, r)["birth_date"] == CLINIC_TODAY


def test_a_diagnosis_of_today_is_accepted_before_eight(client, early):
    r = register(client, name="李建国", sex="1", birth_date="1950-01-01", htn="1", htn_diagnosed_on=CLINIC_TODAY)
    row = saved(early, r)
    assert row["htn_diagnosed_on"] == CLINIC_TODAY
    since = early.store.scalar("SELECT since FROM chronic_management WHERE resident_id = ?", (row["id"],))
    assert since == CLINIC_TODAY


def test_a_tomorrow_birth_date_is_still_refused(client, early):
    before = early.store.scalar("SELECT count(*) FROM residents")
    r = register(client, name="王小宝", sex="1", birth_date="2026-12-03")
    assert r.status_code == 422
    assert early.store.scalar("SELECT count(*) FROM residents") == before


def test_full_width_id_number_and_phone_are_accepted_and_stored_plain(client, early):
    plain = "11010519491231002X"
    typed = plain.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})     # full-width forms
    assert typed == "１１０１０５１９４９１２３１００２Ｘ"
    r = register(client, name="张三", id_number=typed, phone="１３８００１３８０００")
    row = saved(early, r)
    assert (row["id_number"], row["phone"]) == (plain, "13800138000")
    assert row["birth_date"] == "1949-12-31"
    # and she is found by what the doctor types in full-width mode too
    assert "张三" in client.get("/?q=１３８００１３８０００").text


@pytest.mark.parametrize("seq, groups", [(10, "{} {} {}"), (11, "{}\u3000{}\u3000{}"), (12, " {}\t{}  {} ")])
def test_an_id_number_typed_in_groups_with_spaces_is_accepted(client, early, seq, groups):
    number = id_number(seq)
    typed = groups.format(number[:6], number[6:14], number[14:].lower())
    row = saved(early, register(client, name="张三", id_number=typed))
    assert row["id_number"] == number


def test_passwords_are_not_normalised(early):
    from edge.web.typed import normalise

    assert normalise({"password": "ｐａｓｓ１", "name": "ｐａｓｓ１"}) == {"password": "ｐａｓｓ１", "name": "pass1"}


def test_core_defaults_to_the_clinic_zone_too(early):
    """Callers without a node (the demo village, the hub's downlink) still count in Beijing time."""
    rid = residents.create(early.store, {"name": "赵六", "sex": "2", "birth_date": CLINIC_TODAY},
                           division_code="110105001001", now=EARLY_MORNING, actor="doc")
    assert residents.get(early.store, rid)["birth_date"] == CLINIC_TODAY


def test_the_resident_page_shows_the_clinic_date_and_age_on_its_birthday(client, early):
    """Born on 2 December: at 07:30 Beijing time she has had her birthday; the chart ends today."""
    from edge.core import devices
    from edge.core.ingest import ingest
    from edge.core.reading import Reading

    row = saved(early, register(client, name="孙兰", id_number=id_number(20, born="19561202")))
    devices.add(early.store, "bp-day", kind="bp", name="bp", resident_id=row["id"], now=EARLY_MORNING, actor="t")
    ingest(early.store, [Reading("bp-day", "8480-6", 128, "mm[Hg]", "mqtt", source_key="day")], clock=early.clock)
    page = client.get(f"/residents/{row['id']}").text
    assert re.search(r'<text class="axis"[^>]*text-anchor="end">2026-12-02</text>', page)
    assert residents.age(row["birth_date"], early.today()) == 70
    assert "70" in page
