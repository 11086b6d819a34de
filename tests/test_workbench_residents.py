"""Residents, search, measuring sessions and the inbox, against a real SQLite store."""
from datetime import datetime, timedelta, timezone

import pytest

from edge.core import audit, devices, measuring, residents
from edge.core.errors import ValidationError
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.core.resident_search import initials, search
from conftest import SetClock

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
VILLAGE = "110105001001"


def make(store, **fields):
    return residents.create(store, fields, division_code=VILLAGE, now=NOW, actor="doc")


def test_register_derives_birth_and_sex_and_numbers_the_record(node):
    a = make(node.store, name="张三", id_number="11010519491231002X")
    b = make(node.store, name="李四", sex="1", birth_date="1960-02-03")
    ra, rb = residents.get(node.store, a), residents.get(node.store, b)
    assert (ra["birth_date"], ra["sex"]) == ("1949-12-31", "2")
    assert ra["health_record_no"] == "11010500100100001" and rb["health_record_no"] == "11010500100100002"
    assert len(ra["health_record_no"]) == 17


def test_typed_birth_date_and_sex_must_match_the_id_number(node):
    with pytest.raises(residents.FormInvalid) as e:
        make(node.store, name="张三", id_number="11010519491231002X", birth_date="1949-12-30", sex="1")
    assert set(e.value.errors) == {"birth_date", "sex"}
    assert node.store.scalar("SELECT count(*) FROM residents") == 0  # nothing saved half


def test_duplicate_id_number_names_the_existing_record(node):
    first = make(node.store, name="张三", id_number="11010519491231002X")
    with pytest.raises(residents.FormInvalid) as e:
        make(node.store, name="张三丰", id_number="11010519491231002x")
    assert e.value.duplicate_of == first and "already registered" in e.value.errors["id_number"]


def test_one_box_finds_by_initials_name_id_tail_and_phone(node):
    rid = make(node.store, name="张三", id_number="11010519491231002X", phone="13800138000")
    make(node.store, name="曾小明", sex="1", birth_date="1970-01-01", phone="13900000001")
    for q in ("zs", "ZS", "张", "张三", "002X", "1231002x", "13800", "8000", "11010500100100001"):
        assert [r["id"] for r in search(node.store, q)] == [rid], q
    assert [r["name"] for r in search(node.store, "zxm")] == ["曾小明"]   # 曾 read as zeng
    assert [r["name"] for r in search(node.store, "cxm")] == ["曾小明"]
    assert search(node.store, "ls") == []


def test_every_search_branch_is_an_indexed_query(node):
    make(node.store, name="张三", id_number="11010519491231002X", phone="13800138000")
    for q in ("zs", "8000", "张"):
        seen: list[str] = []
        node.store.conn.set_trace_callback(seen.append)
        search(node.store, q)
        node.store.conn.set_trace_callback(None)
        sql = [x for x in seen if x.lstrip().startswith("SELECT")][-1]
        plan = " | ".join(p["detail"] for p in node.store.query("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN r" not in plan and "SCAN residents" not in plan and "SCAN i" not in plan, (q, plan)
        assert "INDEX" in plan or "PRIMARY KEY" in plan, (q, plan)


def test_initials_cover_polyphonic_surnames():
    assert initials("张三") == ["zs"]
    assert initials("曾小明") == ["zxm", "cxm"]          # the surname reading first
    assert initials("单田芳") == ["stf", "dtf", "ctf"]
    assert initials("长孙无忌")[0] == "zswj" and initials("长江") == ["cj", "zj"]
    assert initials("王 Li") == ["wl", "yl"] and initials("") == []


def test_a_surname_is_found_by_its_surname_reading_and_by_its_everyday_one(node):
    """What a village doctor types: the surname as a surname is read (单 Shàn, 解 Xiè, 仇 Qiú,
    尉迟 Yùchí; edge/core/surnames.py), and also the everyday reading; a given name whose
    characters form a word (解放) is still found by each character's readings."""
    ids = {name: make(node.store, name=name, sex="1", birth_date="1970-01-01")
           for name in ("单长乐", "解放", "仇英", "查良镛", "尉迟恭", "曾小明", "区寄")}
    for q, name in (("scl", "单长乐"), ("dcl", "单长乐"), ("xf", "解放"), ("jf", "解放"), ("qy", "仇英"),
                    ("zly", "查良镛"), ("ycg", "尉迟恭"), ("zxm", "曾小明"), ("oj", "区寄"),
                    ("qj", "区寄")):
        assert [r["name"] for r in search(node.store, q)] == [name], q
    primary = {r["name"]: r["name_initials"] for r in node.store.query("SELECT name, name_initials FROM residents")}
    assert primary == {"单长乐": "scl", "解放": "xf", "仇英": "qy", "查良镛": "zly", "尉迟恭": "ycg",
                       "曾小明": "zxm", "区寄": "oj"}
    assert len(ids) == 7


def test_initials_stored_by_the_old_rule_are_recomputed_at_the_upgrade(node):
    """Migration 125: a resident written while one reading was chosen from pypinyin's phrases
    (解放 stored only as "jf") is found by the surname reading after the upgrade."""
    import sqlite_utils

    from edge.core.schema_workbench import initials_by_character

    rid = make(node.store, name="解放", sex="1", birth_date="1970-01-01")
    with node.store.atomic() as conn:      # what the phrase tables stored before
        conn.execute("DELETE FROM resident_initials WHERE resident_id = ?", (rid,))
        conn.execute("INSERT INTO resident_initials (initials, resident_id) VALUES ('jf', ?)", (rid,))
        conn.execute("UPDATE residents SET name_initials = 'jf' WHERE id = ?", (rid,))
    assert search(node.store, "xf") == []
    with node.store.atomic() as conn:
        initials_by_character(sqlite_utils.Database(conn))
    assert [r["id"] for r in search(node.store, "xf")] == [rid]
    assert [r["id"] for r in search(node.store, "jf")] == [rid]
    assert node.store.scalar("SELECT name_initials FROM residents WHERE id = ?", (rid,)) == "xf"


def test_edit_is_audited_with_before_and_after(node):
    rid = make(node.store, name="张三", id_number="11010519491231002X")
    residents.update(node.store, rid, {"name": "张三", "id_number": "11010519491231002X", "phone": "13800138000",
                                       "htn": "on", "htn_diagnosed_on": "2020-05-01"}, now=NOW, actor="doc")
    last = audit.history(node.store.conn, "resident", rid)[-1]
    assert last["action"] == "resident.update" and last["actor"] == "doc"
    assert last["before"] == {"phone": None, "htn": 0, "htn_diagnosed_on": None}
    assert last["after"] == {"phone": "13800138000", "htn": 1, "htn_diagnosed_on": "2020-05-01"}


def test_void_needs_a_reason_and_keeps_the_row(node):
    rid = make(node.store, name="张三", sex="1", birth_date="1950-01-01")
    with pytest.raises(residents.FormInvalid):
        residents.void(node.store, rid, "", now=NOW, actor="doc")
    residents.void(node.store, rid, "registered twice", now=NOW, actor="doc")
    assert residents.get(node.store, rid)["void_reason"] == "registered twice"
    assert search(node.store, "zs") == []


def bp(device, sys_, t, dia=80):
    return [Reading(device, "8480-6", sys_, "mm[Hg]", "mqtt", device_time=t),
            Reading(device, "8462-4", dia, "mm[Hg]", "mqtt", device_time=t)]


def test_measuring_now_routes_clinic_readings_and_a_bound_device_wins(node):
    s = node.store
    patient = make(s, name="张三", sex="1", birth_date="1950-01-01")
    other = make(s, name="王五", sex="1", birth_date="1951-01-01")
    devices.add(s, "clinic-bp", kind="bp", now=NOW)
    devices.add(s, "watch", kind="wearable", now=NOW)
    devices.bind(s, "watch", other, now=NOW)
    measuring.start(s, patient, minutes=5, now=NOW, actor="doc")
    during = SetClock(NOW + timedelta(minutes=2))
    out = ingest(s, bp("clinic-bp", 150, NOW + timedelta(minutes=2)) + bp("watch", 120, NOW), clock=during)
    assert [o.resident_id for o in out] == [patient, patient, other, other]
    after = SetClock(NOW + timedelta(minutes=6))
    out = ingest(s, bp("clinic-bp", 151, NOW + timedelta(minutes=6)), clock=after)
    assert [o.resident_id for o in out] == [None, None]          # session expired: to the inbox
    groups = measuring.inbox(s)
    assert len(groups) == 1 and len(groups[0]["readings"]) == 2


def test_inbox_assign_and_dismiss(node):
    s = node.store
    patient = make(s, name="张三", sex="1", birth_date="1950-01-01")
    devices.add(s, "clinic-bp", kind="bp", now=NOW)
    ingest(s, bp("clinic-bp", 150, NOW) + bp("clinic-bp", 160, NOW + timedelta(minutes=1)), clock=SetClock(NOW))
    first, second = sorted(measuring.inbox(s), key=lambda g: g["effective_time"])
    measuring.assign(s, [r["id"] for r in first["readings"]], patient, now=NOW, actor="doc")
    with pytest.raises(ValidationError):
        measuring.dismiss(s, [r["id"] for r in second["readings"]], "", now=NOW, actor="doc")
    measuring.dismiss(s, [r["id"] for r in second["readings"]], "test measurement", now=NOW, actor="doc")
    assert measuring.inbox(s) == []
    assert s.scalar("SELECT count(*) FROM readings WHERE resident_id = ?", (patient,)) == 2
    with pytest.raises(ValidationError):   # already claimed
        measuring.assign(s, [first["readings"][0]["id"]], patient, now=NOW, actor="doc")
    assert audit.verify(s.conn).ok


def test_void_reading_keeps_it_with_reason(node):
    s = node.store
    devices.add(s, "clinic-bp", kind="bp", now=NOW)
    rid = ingest(s, bp("clinic-bp", 150, NOW), clock=SetClock(NOW))[0].id
    measuring.void_reading(s, rid, "cuff was loose", now=NOW, actor="doc")
    row = s.one("SELECT status, status_before_void, void_reason FROM readings WHERE id = ?", (rid,))
    assert row == {"status": "voided", "status_before_void": "valid", "void_reason": "cuff was loose"}


def test_todays_patients_come_from_todays_readings_through_the_time_index(node):
    s = node.store
    patient = make(s, name="张三", sex="1", birth_date="1950-01-01")
    devices.add(s, "clinic-bp", kind="bp", now=NOW)
    measuring.start(s, patient, now=NOW, actor="doc")
    ingest(s, bp("clinic-bp", 150, NOW), clock=SetClock(NOW + timedelta(minutes=1)))
    assert [r["name"] for r in measuring.today(s, since=NOW - timedelta(hours=1))] == ["张三"]
    assert measuring.today(s, since=NOW + timedelta(hours=1)) == []
    seen: list[str] = []
    s.conn.set_trace_callback(seen.append)
    measuring.today(s, since=NOW)
    s.conn.set_trace_callback(None)
    plan = " | ".join(p["detail"] for p in s.query("EXPLAIN QUERY PLAN " + seen[-1]))
    assert "readings_period_source" in plan, plan
