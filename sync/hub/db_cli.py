"""`clinic-edge hub db ...`: the hub database's schema, for county IT (docs/hub.md, "The hub's
database schema"). Every other hub command upgrades the schema when it opens the database; these
two show it and do it on purpose."""
from __future__ import annotations

import sys

import click

from edge.core.node import Node


@click.group("db")
def db_group() -> None:
    """The hub database's schema: Alembic revisions shipped in sync/hub/migrations (docs/hub.md)."""


@db_group.command("current")
@click.pass_obj
def db_current(node: Node) -> None:
    """Show the database's schema revision and this hub's newest; exit 1 if it is not at the newest."""
    from . import schema
    from .cli import HubCliError, open_store

    store = open_store(node, pool_size=1, upgrade=False)
    try:
        st = schema.state(store.engine)
    except Exception as e:  # noqa: BLE001 - unreachable server, bad credentials: say which and why
        raise HubCliError(f"cannot read the hub database {store.engine.url.render_as_string()}: "
                          f"{e.__class__.__name__}: {e}")
    click.echo(f"hub database {store.engine.url.render_as_string()}: {st.describe()}")
    if not st.at_head:
        sys.exit(1)


@db_group.command("upgrade")
@click.pass_obj
def db_upgrade(node: Node) -> None:
    """Bring the database's schema to this hub's newest revision (`hub serve` does so at start)."""
    from . import schema
    from .cli import open_store

    store = open_store(node, pool_size=1)
    click.echo(f"hub database {store.engine.url.render_as_string()}: {schema.change_text(*store.migrated)}")
