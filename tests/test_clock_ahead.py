"""A box clock that is wrong, ahead (2038) or behind (1970), is caught at ingest and corrected from
(boot id, monotonic) once the hub's signed time is known on that boot; the corrected version
supersedes the wrong one at a real hub. Clocks are passed in (`clock=`), never patched."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from edge.core import config as config_mod, devices
from edge.core.ingest import ingest
from edge.core.node import Node
from edge.core.reading import Reading, parse_iso
from sync.client import state
from sync.client.controller import Cycle
from sync_fixtures import enroll, hub, hub_database, sync_env  # noqa: F401
from conftest import SetClock

pytestmark = pytest.mark.parametrize("hub_database", ["sqlite"], indirect=True)


def bp(value: float, key: str, **kw) -> Reading:
    return Reading("bp-1", "8480-6", value, "mm[Hg]", "mqtt", source_key=key, **kw)


def box(env, node, clock) -> Node:
    devices.add(node.store, "bp-1", kind="bp", name="bp", now=datetime.now(timezone.utc), actor="test")
    node.close()
    return Node(config_mod.load(env=sync_env(env)), clock=clock)


def rows(pi) -> dict[float, dict]:
    return {r["value"]: r for r in pi.store.query("SELECT value, device_time, receive_time, effective_time,"
                                                  " clock_status FROM readings")}


def at_hub(hub, value: float) -> list[dict]:
    """Every version the hub holds of the reading with this value, oldest first."""
    out = [dict(json.loads(r["payload"]), version=r["version"]) for r in hub.store().export()
           if r["kind"] == "reading"]
    return sorted((p for p in out if p["value"] == value), key=lambda p: p["version"])


def close_to(text: str, when: datetime, seconds: float = 5) -> bool:
    return abs((parse_iso(text) - when).total_seconds()) < seconds


def test_a_clock_twelve_years_ahead_is_caught_and_the_hub_ends_up_with_the_true_time(env, node, hub):
    enroll(env, hub)
    clock = SetClock(datetime(2038, 3, 1, 8, 0, tzinfo=timezone.utc), "boot-2038", 500.0)
    pi = box(env, node, clock)
    ingest(pi.store, [bp(150, "a")], clock=clock)
    # the device took its time from the box (BLE Current Time): just as wrong
    ingest(pi.store, [bp(140, "b", device_time=clock.wall)], clock=clock)
    assert {r["clock_status"] for r in rows(pi).values()} == {"suspect"}
    clock.advance(120)                                  # two minutes later the hub is reachable
    real = datetime.now(timezone.utc)
    result = Cycle(pi, state.identity(pi)).run()
    assert result.ok, result.error
    fixed = rows(pi)
    for value in (150.0, 140.0):
        assert fixed[value]["clock_status"] == "corrected"
        assert close_to(fixed[value]["effective_time"], real - timedelta(seconds=120))
        versions = at_hub(hub, value)
        assert [v["version"] for v in versions] == [1, 2]
        assert versions[0]["effective_time"].startswith("2038")
        assert versions[-1]["clock_status"] == "corrected"          # the latest version supersedes
        assert close_to(versions[-1]["effective_time"], real - timedelta(seconds=120))
    assert fixed[140.0]["device_time"].startswith("2038")            # what the device said is kept
    # same boot, clock still wrong: now caught against the hub's time, corrected at the next cycle
    clock.advance(60)
    ingest(pi.store, [bp(130, "c")], clock=clock)
    assert rows(pi)[130.0]["clock_status"] == "suspect"
    assert Cycle(pi, state.identity(pi)).run().ok
    # (this fake monotonic clock stood still while the real one ran: the hub's latest anchor wins)
    assert close_to(at_hub(hub, 130.0)[-1]["effective_time"], datetime.now(timezone.utc), 15)
    # once the clock is right (NTP), readings are simply ok
    clock.wall = datetime.now(timezone.utc)
    ingest(pi.store, [bp(120, "d")], clock=clock)
    assert rows(pi)[120.0]["clock_status"] == "ok"
    pi.close()


def test_a_clock_in_1970_is_corrected_at_the_hub_too(env, node, hub):
    enroll(env, hub)
    clock = SetClock(datetime(1970, 1, 1, 0, 5, tzinfo=timezone.utc), "boot-1970", 300.0)
    pi = box(env, node, clock)
    real_device_time = datetime.now(timezone.utc) - timedelta(minutes=3)
    ingest(pi.store, [bp(150, "a"), bp(145, "b", device_time=real_device_time)], clock=clock)
    assert {r["clock_status"] for r in rows(pi).values()} == {"suspect"}
    assert rows(pi)[145.0]["effective_time"] == real_device_time.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")                                             # a device with a good clock is believed
    clock.advance(90)
    real = datetime.now(timezone.utc)
    assert Cycle(pi, state.identity(pi)).run().ok
    versions = at_hub(hub, 150.0)
    assert versions[0]["effective_time"].startswith("1970") and versions[-1]["version"] == 2
    assert close_to(versions[-1]["effective_time"], real - timedelta(seconds=90))
    pi.close()


def test_a_right_clock_is_ok_with_and_without_the_hub_and_a_device_far_ahead_is_not_believed(env, node, hub):
    enroll(env, hub)
    clock = SetClock(datetime.now(timezone.utc), "boot-good", 50.0)
    pi = box(env, node, clock)
    ingest(pi.store, [bp(150, "a")], clock=clock)                # never synced on this boot
    assert Cycle(pi, state.identity(pi)).run().ok
    clock.advance(30)
    ingest(pi.store, [bp(140, "b", device_time=datetime(2099, 1, 1, tzinfo=timezone.utc))], clock=clock)
    got = rows(pi)
    assert got[150.0]["clock_status"] == got[140.0]["clock_status"] == "ok"
    assert got[140.0]["effective_time"] == got[140.0]["receive_time"]   # not 2099
    assert got[140.0]["device_time"].startswith("2099")
    pi.close()
