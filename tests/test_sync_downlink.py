"""Downlink (residents, code tables; conflicts kept for the doctor) and time (offset learned from
signed hub answers; readings taken before the clock was set corrected from their anchors)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from conftest import clinic_edge, SetClock
from edge.core import config as config_mod, devices
from edge.core.ingest import ingest
from edge.core.node import Node
from edge.core.reading import Reading, parse_iso
from sync.client import state
from sync.client.controller import Cycle
from sync_fixtures import enroll, hub, hub_database, hub_records, sync_env  # noqa: F401


def _push(hub, node_name: str, kind: str, rid: str, version: int, payload: dict, *, cli: bool = False) -> None:
    if cli:
        hub.cli("push", node_name, kind, rid, "--version", str(version), "--payload", json.dumps(payload))
        return
    hub.store().put_downlink(node_name, kind, rid, version, json.dumps(payload, ensure_ascii=False),
                             now=datetime.now(timezone.utc))


def _resident(node, rid: str) -> dict:
    return node.store.one("SELECT * FROM residents WHERE id = ?", (rid,))


def test_residents_and_code_tables_come_down_once_and_are_not_echoed(env, node, hub):
    enroll(env, hub)
    person = {"name": "王秀英", "sex": "2", "birth_date": "1956-03-02", "phone": "13800000001",
              "address": "东村3组", "not_a_column_here": "ignored"}
    _push(hub, "clinic-a", "resident", "res-1", 1, person, cli=True)
    _push(hub, "*", "code_table", "icd10-I10", 1, {"code": "I10", "name": "原发性高血压"})
    _push(hub, "clinic-b", "resident", "res-other", 1, {"name": "别的诊所"})
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    row = _resident(node, "res-1")
    assert row["name"] == "王秀英" and row["phone"] == "13800000001"
    assert _resident(node, "res-other") is None
    assert node.store.scalar("SELECT count(*) FROM sync_inbox WHERE kind = 'code_table'") == 1
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'resident'") == 0   # never echoed
    # a newer hub version applies when nobody edited the resident here; an old one changes nothing
    _push(hub, "clinic-a", "resident", "res-1", 2, {**person, "phone": "13900000002"})
    _push(hub, "clinic-a", "resident", "res-1", 1, {**person, "phone": "00000000000"})
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    assert _resident(node, "res-1")["phone"] == "13900000002"
    assert state.get(node.store, "cursor") == 5
    assert hub_records(hub) == []


def test_resident_edited_on_both_sides_is_kept_as_a_conflict_not_overwritten(env, node, hub):
    enroll(env, hub)
    person = {"name": "李建国", "sex": "1", "birth_date": "1950-01-01", "phone": "13700000000"}
    _push(hub, "clinic-a", "resident", "res-2", 1, person)
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    with node.store.atomic() as conn:     # the doctor corrects the phone number here
        conn.execute("UPDATE residents SET phone = '13711111111', version = version + 1 WHERE id = 'res-2'")
    _push(hub, "clinic-a", "resident", "res-2", 2, {**person, "phone": "13722222222"})
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    assert _resident(node, "res-2")["phone"] == "13711111111"
    status = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    assert status["conflicts"] == 1
    from sync.client.downlink import open_conflicts

    conflict = open_conflicts(node.store)[0]
    assert conflict["record_id"] == "res-2" and conflict["remote"]["phone"] == "13722222222"
    assert conflict["local"]["phone"] == "13711111111"


def test_readings_taken_before_the_clock_was_set_are_corrected_from_the_hub_offset(env, node, hub):
    enroll(env, hub)
    devices.add(node.store, "bp-1", kind="bp", name="bp", now=datetime.now(timezone.utc), actor="test")
    node.close()
    clock = SetClock(datetime(1970, 1, 1, 0, 5, tzinfo=timezone.utc), "boot-now", 300.0)
    old_boot = SetClock(datetime(1970, 1, 1, 0, 1, tzinfo=timezone.utc), "boot-before", 60.0)
    pi = Node(config_mod.load(env=sync_env(env)), clock=clock)
    ingest(pi.store, [Reading("bp-1", "8480-6", 150, "mm[Hg]", "mqtt", source_key="a")], clock=old_boot)
    ingest(pi.store, [Reading("bp-1", "8480-6", 140, "mm[Hg]", "mqtt", source_key="b")], clock=clock)
    future = Reading("bp-1", "8480-6", 130, "mm[Hg]", "mqtt", source_key="c",
                     device_time=datetime(2099, 1, 1, tzinfo=timezone.utc))
    ingest(pi.store, [future], clock=clock)
    assert pi.store.scalar("SELECT count(*) FROM readings WHERE clock_status = 'suspect'") == 3
    clock.advance(90)                                 # 90 s later the hub is reachable
    before = datetime.now(timezone.utc)
    result = Cycle(pi, state.identity(pi)).run()
    assert result.ok, result.error
    offset = state.get(pi.store, "clock_offset_s")
    assert abs(offset - (before.timestamp() - clock.wall.timestamp())) < 3
    rows = {r["value"]: r for r in pi.store.query("SELECT value, receive_time, effective_time, clock_status, meta"
                                                  " FROM readings")}
    fixed = rows[140.0]
    assert fixed["clock_status"] == "corrected"
    assert abs((parse_iso(fixed["receive_time"]) - (before - timedelta(seconds=90))).total_seconds()) < 3
    assert fixed["effective_time"] == fixed["receive_time"]
    assert json.loads(fixed["meta"])["clock_original"]["receive_time"].startswith("1970-01-01T00:05")
    assert rows[150.0]["clock_status"] == "uncorrectable"      # its boot ended before any time source
    # a device dated 2099 is not believed (issue 12 item 4): it takes the corrected receive time
    assert rows[130.0]["clock_status"] == "corrected" and rows[130.0]["effective_time"] == rows[130.0]["receive_time"]
    held = sorted(hub_records(hub))
    assert [v for k, _, v in held if k == "reading"].count(2) == 3   # corrections went up as version 2
    assert len(held) == 6
    pi.close()


def test_settings_from_the_county_are_checked_then_applied_at_next_start(env, node, hub):
    enroll(env, hub)
    _push(hub, "clinic-a", "config", "web", 1, {"idle_minutes": 12}, cli=True)
    _push(hub, "clinic-a", "config", "web", 2, {"idle_minutes": "forever"})     # refused: wrong type
    _push(hub, "clinic-a", "config", "mqtt", 1, {"url": "mqtt://10.0.0.9:1883"})  # refused: local wiring
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    loaded = config_mod.load(env=sync_env(env))
    assert loaded["web"]["idle_minutes"] == 12
    assert loaded["mqtt"]["url"] != "mqtt://10.0.0.9:1883"
    # the environment still wins over the county, as over the config file
    assert config_mod.load(env={**sync_env(env), "CLINIC_EDGE_WEB_IDLE_MINUTES": "7"})["web"]["idle_minutes"] == 7
