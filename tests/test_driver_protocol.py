"""Every driver `clinic-edge ingest` can start satisfies the runner's `Driver` protocol: the
members the runner calls exist on the class with the protocol's parameters and return types, and
the objects `runner.build()` makes from a config enabling every driver are `Driver`s."""
from __future__ import annotations

import importlib
import inspect
import typing

import pytest

from device_drivers import runner
from device_drivers.runner import DRIVER_FACTORIES, Driver
from edge.core import config as config_mod
from edge.core.node import Node

PROTOCOL_METHODS = ("start", "stop", "join", "healthy", "status")


def _driver_class(name: str) -> type:
    module, _, attr = DRIVER_FACTORIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def test_the_protocol_lists_what_the_runner_calls():
    members = {n for n in vars(Driver) if not n.startswith("_")} | set(typing.get_type_hints(Driver))
    assert members == {"name", *PROTOCOL_METHODS}


@pytest.mark.parametrize("name", sorted(DRIVER_FACTORIES))
def test_each_registered_driver_has_the_protocols_methods_and_signatures(name):
    cls = _driver_class(name)
    assert isinstance(getattr(cls, "name", None), str) and cls.name == name
    for method in PROTOCOL_METHODS:
        want, have = getattr(Driver, method), getattr(cls, method, None)
        assert callable(have), f"{cls.__name__}.{method} is missing"
        wanted = list(inspect.signature(want).parameters.values())
        params = list(inspect.signature(have).parameters.values())
        assert [(p.name, p.kind, p.default) for p in params[:len(wanted)]] == \
            [(p.name, p.kind, p.default) for p in wanted], f"{cls.__name__}.{method}{inspect.signature(have)}"
        extra = params[len(wanted):]
        assert all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in extra), \
            f"{cls.__name__}.{method} needs more than the runner passes"
        hints = typing.get_type_hints(have)
        assert hints.get("return") == typing.get_type_hints(want)["return"], f"{cls.__name__}.{method} return type"


EVERY_DRIVER = """\
[mqtt]
enabled = true
[drivers.astm]
url = "loop://"
[drivers.mllp]
listen = "127.0.0.1:0"
[drivers.lines]
url = "loop://"
profile = "bp-sys-dia-pul"
[drivers.ble]
scan_seconds = 4
"""


def test_build_makes_a_driver_of_every_registered_kind_from_the_config(tmp_path, env):
    cfg = tmp_path / "config.toml"
    cfg.write_text(EVERY_DRIVER)
    node = Node(config_mod.load(cfg, env=env))
    try:
        drivers = runner.build(node)     # built, not started: no port or broker is opened
    finally:
        node.close()
    assert sorted(d.name for d in drivers) == sorted(DRIVER_FACTORIES)
    assert all(isinstance(d, Driver) for d in drivers)
