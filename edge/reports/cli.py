"""`clinic-edge report show|write|export`: the clinic's report without opening a browser.

`write` with no period writes last month's report (snapshot + outbox + audit), so a monthly timer
(`clinic-edge report write --if-missing` on the 1st) sends every report upstream with no click.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

from edge.core.cli_error import CliError
from edge.core.node import Node
from . import archive, elderly, export, source
from .population import Period, month, parse_period


def _today(node: Node) -> date:
    return node.today()


def _period(node: Node, text: str | None, *, default_last_month: bool) -> Period:
    if text:
        try:
            return parse_period(text)
        except ValueError as e:
            raise CliError(str(e))
    d = _today(node)
    if default_last_month:
        return month(d.year - (d.month == 1), (d.month - 2) % 12 + 1)
    return month(d.year, d.month)


@click.group("report")
def report() -> None:
    """Monthly/quarterly/annual follow-up reports (KPIs computed from the records)."""


@report.command("show")
@click.option("--period", default=None, help="YYYY-MM, YYYY-Qn or YYYY (default: this month)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.pass_obj
def show(node: Node, period: str | None, as_json: bool) -> None:
    p = _period(node, period, default_last_month=False)
    r = source.report(node.store, p, node.config["node"]["timezone"])
    if as_json:
        click.echo(json.dumps(archive.snapshot(r), ensure_ascii=False, indent=1))
        return
    click.echo(export.title(r))
    for label, num, den, value in export.rows(r):
        shown = f"{value:.1%}" if isinstance(value, float) else ("" if value is None else value)
        click.echo(f"{label:<32} {num:>6} {'' if den is None else den:>6} {shown:>8}")


@report.command("write")
@click.option("--period", default=None, help="YYYY-MM, YYYY-Qn or YYYY (default: last month)")
@click.option("--if-missing", is_flag=True, help="do nothing if this period was already written")
@click.pass_obj
def write(node: Node, period: str | None, if_missing: bool) -> None:
    """Write the report to the outbox (the sync carries it to the county)."""
    p = _period(node, period, default_last_month=True)
    done = archive.written(node.store, p.label)
    if if_missing and done:
        click.echo(f"report {p.label} was already written ({done[0]['id']} at {done[0]['created_at']})")
        return
    rid = archive.write(node.store, source.report(node.store, p, node.config["node"]["timezone"]),
                        actor="clinic-edge report write", at=node.clock.now())
    click.echo(f"report {p.label} written: {rid}")


@report.command("export")
@click.option("--period", default=None, help="YYYY-MM, YYYY-Qn or YYYY (default: this month)")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default="xlsx", show_default=True)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.pass_obj
def export_cmd(node: Node, period: str | None, fmt: str, lang: str, output: str) -> None:
    p = _period(node, period, default_last_month=False)
    r = source.report(node.store, p, node.config["node"]["timezone"])
    e = elderly.load(node.store, p.end.year, until=p.end)
    body = export.to_xlsx(r, lang, e) if fmt == "xlsx" else export.to_csv(r, lang, e)
    Path(output).write_bytes(body)
    click.echo(f"{output}: report {p.label}")
