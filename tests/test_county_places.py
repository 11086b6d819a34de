"""A node sends its village's division code in its hello, and the county view places it under its
township by itself (docs/county.md, "Townships"): real nodes say hello to a real `hub serve`.
A township county IT named for one clinic names every clinic with the same township code; a
township county IT set by hand for a clinic wins over its code."""
from __future__ import annotations

import json

import pytest

from edge.core import config as config_mod
from edge.core.node import Node
from sync.client import state
from sync.client.controller import Cycle
from sync.hub import county, status
from county_support import T0
from sync_fixtures import Hub, enroll


@pytest.fixture
def hub(env, tmp_path):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}", tls=False).start()
    yield h
    h.stop()


def say_hello(env, tmp_path, hub, name: str, code: str) -> None:
    data = tmp_path / name
    data.mkdir()
    node_env = {**env, "CLINIC_EDGE_DATA": str(data), "CLINIC_EDGE_NODE_DIVISION_CODE": code}
    enroll(node_env, hub, name)
    node = Node(config_mod.load(env=node_env))
    try:
        result = Cycle(node, state.identity(node)).run()
        assert result.ok, result.error
    finally:
        node.close()


def test_clinics_appear_under_the_township_of_their_division_code(env, tmp_path, hub):
    say_hello(env, tmp_path, hub, "east", "110105001001")
    say_hello(env, tmp_path, hub, "west", "110105001002")
    say_hello(env, tmp_path, hub, "south", "110105002007")
    store = hub.store()
    assert json.loads(store.node("east")["status"])["division_code"] == "110105001001"
    towns = {n: p.township for n, p in county.all_places(store).items()}
    assert towns == {"east": "乡镇 110105001", "west": "乡镇 110105001", "south": "乡镇 110105002"}

    # county IT names the township once, on one of its clinics: the other follows
    county.set_place(store, "east", "城关镇", "东村卫生室", actor="it", now=T0)
    towns = {n: p.township for n, p in county.all_places(store).items()}
    assert towns == {"east": "城关镇", "west": "城关镇", "south": "乡镇 110105002"}

    # a township set by hand wins over the division code (a clinic whose code is out of date)
    county.set_place(store, "south", "城关镇", None, actor="it", now=T0)
    assert county.all_places(store)["south"].township == "城关镇"
    table = county.build("2026-09", county.all_places(store), {}, {})
    assert [(r.level, r.name) for r in table.rows if r.level != "clinic"] == [("township", "城关镇"),
                                                                              ("county", table.county.name)]


def test_a_malformed_division_code_in_a_hello_is_shown_as_invalid_and_places_nothing():
    assert status.clean({"division_code": "11010500100"})["division_code"] == status.INVALID
    assert status.clean({"division_code": "１１０１０５００１００１"})["division_code"] == status.INVALID
    assert county.division_code(json.dumps({"division_code": status.INVALID})) == ""


def test_the_node_refuses_a_division_code_that_is_not_12_digits(env):
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.load(env={**env, "CLINIC_EDGE_NODE_DIVISION_CODE": "1101050010"})
    assert "division_code" in str(e.value) and "12-digit" in str(e.value)
