"""`clinic-edge hub county ...`: the county view's settings and files from the command line, for
county IT with many clinics (docs/county.md): set a clinic's township, write the county table or
the de-identified export to a file."""
from __future__ import annotations

from pathlib import Path

import click

from edge.core.node import Node


@click.group("county")
def county_group() -> None:
    """The county view: townships, the county table, the de-identified export (docs/county.md)."""


@county_group.command("township")
@click.argument("node_name")
@click.argument("township")
@click.option("--clinic", default=None, help="the clinic's display name (default: the node name)")
@click.pass_obj
def township(node: Node, node_name: str, township: str, clinic: str | None) -> None:
    """Put NODE_NAME's clinic in TOWNSHIP (its row and subtotal in the county view)."""
    from edge.core.errors import ValidationError

    from . import county
    from .cli import HubCliError, open_store
    from .service import utcnow

    try:
        p = county.set_place(open_store(node, pool_size=1), node_name, township, clinic, actor="cli", now=utcnow())
    except ValidationError as e:
        raise HubCliError(str(e))
    click.echo(f"{p.node}: {p.clinic}, {p.township}")


@county_group.command("table")
@click.argument("period")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_obj
def table(node: Node, period: str, out: Path) -> None:
    """Write the county table of PERIOD (YYYY-MM or YYYY-Qn) to OUT (.csv or .xlsx)."""
    from edge.core import durable
    from edge.core.errors import ValidationError

    from . import county, county_export
    from .cli import HubCliError, open_store

    try:
        t = county.table(open_store(node, pool_size=1), period)
    except ValidationError as e:
        raise HubCliError(str(e))
    durable.write_file(out, county_export.county_xlsx(t) if out.suffix == ".xlsx" else county_export.county_csv(t))
    c = t.county
    click.echo(f"county table {period}: {c.reported} of {c.clinics} clinics reported; "
               f"{len(t.missing)} missing; written to {out}")


@county_group.command("deidentified")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_obj
def deidentified(node: Node, out: Path) -> None:
    """Write the de-identified follow-ups to OUT (.csv or .xlsx), mode 0600."""
    from edge.core import durable

    from . import deidentify
    from .cli import HubCliError, deid_key_path, open_store
    from .county_web import deidentify_file

    try:
        key = deidentify.load_or_create_key(deid_key_path(node))
        export = deidentify.build(open_store(node, pool_size=1), key, min_cell=node.config["hub"]["deid_min_cell"])
    except deidentify.DeidError as e:
        raise HubCliError(str(e))
    durable.write_file(out, deidentify_file(export, "xlsx" if out.suffix == ".xlsx" else "csv"))
    click.echo(f"{len(export.rows)} follow-ups written to {out} (min cell {export.min_cell}; "
               f"{export.generalised} generalised, {export.left_out} left out)")
