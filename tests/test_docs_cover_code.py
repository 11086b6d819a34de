"""The documentation keeps up with the code, mechanically (as Datasette tests its docs): every
`clinic-edge` subcommand is in the README or docs/, every config key is in docs/configuration.md
with its default, and every JSON API route of the node and of the hub is in docs/api.md."""
from __future__ import annotations

import importlib
import json
import re
from dataclasses import fields
from pathlib import Path

import click
import pytest
from flask import Flask

from device_drivers.ble.settings import BleSettings
from device_drivers.runner import DRIVER_FACTORIES
from edge.cli import main
from edge.core import config as config_mod
from edge.core.node import Node

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _docs_text() -> str:
    texts = [(ROOT / "README.md").read_text(encoding="utf-8"), *(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))]
    return re.sub(r"\s+", " ", "\n".join(texts))


def _commands(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, click.Context(cmd, parent=ctx, info_name=name), (*path, name))


def every_command() -> list[str]:
    """Every subcommand path of `clinic-edge`, the entry-point group's included."""
    return ["clinic-edge " + " ".join(p) for p in _commands(main, click.Context(main, info_name="clinic-edge"))]


def test_every_subcommand_is_documented():
    commands = every_command()
    assert {"clinic-edge ingest", "clinic-edge hub ca export", "clinic-edge user add"} <= set(commands)
    text = _docs_text()
    missing = [c for c in commands if not re.search(re.escape(c) + r"(?![\w-])", text)]
    assert missing == [], "document these in README.md or docs/ (as `clinic-edge ...`)"


# --- config keys ---------------------------------------------------------------------------------

def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def code_keys() -> dict[tuple[str, str], tuple[str, str]]:
    """(section, key) -> (default as written in the docs, who may set it) from the code."""
    keys = {}
    for section, table in config_mod.SCHEMA.items():
        for name, key in table.items():
            who = ("county too" if name in config_mod.COUNTY_KEYS.get(section, ())
                   else "root only" if name in config_mod.ROOT_ONLY.get(section, ()) else "")
            keys[(section, name)] = (f"`{_literal(key.default)}`", who)
    for driver, target in DRIVER_FACTORIES.items():
        if driver == "mqtt":            # [mqtt] is a section of the schema above
            continue
        section = f"drivers.{driver}"
        keys[(section, "enabled")] = ("`true`", "")
        options = getattr(importlib.import_module(target.partition(":")[0]), "OPTIONS", None)
        if options is None:             # BLE keeps its keys in a dataclass
            assert driver == "ble", f"where are the keys of [drivers.{driver}]? teach this test"
            options = {f.name: f for f in fields(BleSettings)}
            keys.update({(section, n): (f"`{_literal(f.default)}`", "") for n, f in options.items()})
            continue
        keys.update({(section, n): ("(required)" if o.required else f"`{_literal(o.default)}`", "")
                     for n, o in options.items()})
    return keys


def documented_keys() -> dict[tuple[str, str], tuple[str, str]]:
    section, found = None, {}
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `\[([\w.]+)\]`", line)
        if heading:
            section = heading.group(1)
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if section and len(cells) == 4 and re.fullmatch(r"`\w+`", cells[0]):
            found[(section, cells[0].strip("`"))] = (cells[1], cells[3])
    return found


def test_every_config_key_is_documented_with_its_default():
    code, docs = code_keys(), documented_keys()
    assert ("web", "idle_minutes") in code and ("drivers.ble", "adapter") in code
    assert sorted(set(code) - set(docs)) == [], "add these keys to docs/configuration.md"
    assert sorted(set(docs) - set(code)) == [], "docs/configuration.md names keys the code does not have"
    wrong = {k: (docs[k], code[k]) for k in code if docs[k] != code[k]}
    assert wrong == {}, "(documented default and set-by, the code's)"


# --- API routes ----------------------------------------------------------------------------------

def _routes(app: Flask, prefix: str) -> set[str]:
    """'METHOD /path' with each <parameter> written as <>."""
    return {f"{m} {re.sub(r'<[^>]+>', '<>', rule.rule)}" for rule in app.url_map.iter_rules()
            if rule.rule.startswith(prefix) for m in rule.methods - {"HEAD", "OPTIONS"}}


@pytest.fixture
def node_routes(node) -> set[str]:
    from edge.web import create_app

    return _routes(create_app(node=node), "/api/v1/")


def hub_routes() -> set[str]:
    from sync.hub import node_api

    app = Flask("routes")
    app.register_blueprint(node_api.bp)
    return _routes(app, "/v1/") | _routes(app, "/v2/")


def documented_routes() -> set[str]:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    return {f"{m} {re.sub(r'<[^>]+>', '<>', path)}"
            for m, path in re.findall(r"`(GET|POST|PUT|DELETE|PATCH) (/(?:api/v1|v1|v2)/[^`?\s]*)", text)}


def test_every_api_route_is_in_api_md_and_every_documented_one_exists(node_routes):
    code = node_routes | hub_routes()
    assert {"GET /api/v1/residents", "PUT /v1/uploads/<>"} <= code
    docs = documented_routes()
    assert sorted(code - docs) == [], "document these routes in docs/api.md"
    assert sorted(docs - code) == [], "docs/api.md names routes the apps do not have"
