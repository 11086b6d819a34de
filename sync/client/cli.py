"""`clinic-edge enroll` and `clinic-edge sync ...` (entry points `enroll`, `sync`).

PINNED: `enroll --hub URL --code CODE`; `sync --once` exits 0 only when the whole outbox is
acknowledged; `sync status --json`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge.core.cli_error import CliError
from edge.core.node import Node

from sync import protocol, signing

from .errors import SyncError


@click.command()
@click.option("--hub", "hub_url", required=True, help="the county hub, https://HOST:PORT")
@click.option("--code", required=True, help="the one-time code from `clinic-edge hub node add`")
@click.option("--hub-key", "hub_key", default=None,
              help="the hub key fingerprint `hub node add` prints (required unless the hub is on this machine)")
@click.option("--force", is_flag=True, help="enroll again even if this node is already enrolled")
@click.pass_obj
def enroll(node: Node, hub_url: str, code: str, hub_key: str | None, force: bool) -> None:
    """Create this node's key pair and register it at the hub with a one-time code."""
    from edge.core.enrollment import EnrollmentError

    from .enrollment import enroll as enroll_node

    try:
        doc = enroll_node(node, hub_url, code, hub_key, force=force)
    except EnrollmentError as e:
        raise CliError(str(e))
    click.echo(f"enrolled as node {doc['node']} at {hub_url}; hub key {signing.fingerprint(doc['hub_pubkey'])}"
               + ("; node certificate from the county CA" if doc.get("node_cert") else ""))


@click.group(invoke_without_command=True)
@click.option("--once", is_flag=True, help="run one cycle and exit (0 only when everything is acknowledged)")
@click.pass_context
def sync(ctx: click.Context, once: bool) -> None:
    """Send the outbox to the county hub and apply what it sends down (runs as a daemon)."""
    if ctx.invoked_subcommand is not None:
        return
    node: Node = ctx.obj
    if once:
        sys.exit(run_once(node))
    from .daemon import run_daemon

    try:
        sys.exit(run_daemon(node))
    except SyncError as e:
        raise CliError(str(e))


def run_once(node: Node) -> int:
    from . import state
    from .controller import Cycle

    try:
        ident = state.identity(node)
    except SyncError as e:
        raise CliError(str(e))
    from edge.core.errors import StoreFull

    try:
        result = Cycle(node, ident).run()
        node.write_status("sync", {"last_cycle": result.__dict__})
    except StoreFull as e:
        raise CliError(f"sync stopped: {e}; free space on the data partition (`clinic-edge doctor`), "
                       "then sync again", 4)
    msg = (f"sync: {result.batches} batches, {result.acked} records acknowledged, {result.quarantined} quarantined,"
           f" {result.downlink} downlink, {result.conflicts} conflicts, {result.bytes} bytes")
    click.echo(msg, err=True)
    if result.ok:
        q = node.store.scalar("SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL")
        if q:
            click.echo(f"sync: {q} records are quarantined (see `clinic-edge sync status`)", err=True)
        return 0
    if result.busy_for is not None and not result.error:
        from .status import busy_until, busy_text

        until = busy_until(node)
        click.echo(f"sync: not complete: {busy_text(until) if until else 'hub busy'}", err=True)
        return 1
    click.echo(f"sync: not complete: {result.error or 'records still pending'}", err=True)
    return 3 if result.budget_exhausted else 1


@sync.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(node: Node, as_json: bool) -> None:
    """Backlog, last success, clock offset, quarantined records, bytes used today."""
    from .controller import status_report

    report = status_report(node)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=1))
        return
    click.echo(f"node {report['node'] or '(not enrolled)'} -> {report['hub'] or '-'}")
    click.echo(f"backlog: {report['backlog']} records (oldest {report['oldest_pending'] or '-'})")
    click.echo(f"last success: {report['last_success'] or 'never'}; last error: {report['last_error'] or '-'}")
    if report["hub_busy_until"]:
        click.echo(f"hub busy, next try at {report['hub_busy_until']}")
    click.echo(f"clock offset: {report['clock_offset_s'] if report['clock_offset_s'] is not None else '-'} s")
    click.echo(f"bytes today: {report['bytes_today']} (budget {report['daily_budget_bytes'] or 'none'})")
    click.echo(f"quarantined: {report['quarantined']}; downlink conflicts: {report['conflicts']}")
    if report["update_waiting"]:
        click.echo(report["update_waiting"])
    if report["direct"]:
        d = report["direct"]
        click.echo(f"county platform ({d['kind']} -> {d['target']}): {d['delivered']} delivered, {d['pending']} pending,"
                   f" {d['retrying']} retrying, {d['refused']} refused (`clinic-edge sync direct --list`)")
    for q in report["quarantined_records"]:
        click.echo(f"  {q['kind']} {q['record_id']} v{q['version']}: {q['reason']}")


@sync.command("export-bundle")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def export_bundle(node: Node, file: str) -> None:
    """Write every pending batch, signed as for upload and encrypted to the hub's key, to FILE (for a USB stick)."""
    from . import batcher, state

    try:
        ident = state.identity(node)
    except SyncError as e:
        raise CliError(str(e))
    batches = batcher.build_all(node.store, ident, limit=node.config["sync"]["batch_max_records"],
                                now=node.clock.now())
    data = protocol.seal_bundle(ident.hub_pubkey, protocol.write_bundle([b.envelope for b in batches]))
    out = Path(file)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(out)
    click.echo(f"{len(batches)} batches, {sum(b.records for b in batches)} records, {len(data)} bytes -> {out}")
    click.echo("the records stay pending here until the hub's receipt arrives by the next online sync", err=True)


@sync.command("direct")
@click.option("--once", is_flag=True, help="one round, then exit (1 if a document is still waiting or was refused)")
@click.option("--list", "show", is_flag=True, help="list the deliveries (refused first, with the reason) and exit")
@click.option("--state", type=click.Choice(["pending", "retrying", "delivered", "refused"]), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.option("--if-configured", "if_configured", is_flag=True,
              help="exit 0 saying so when [direct] is not set (the clinic-edge-direct unit, enabled on every box)")
@click.pass_obj
def direct(node: Node, once: bool, show: bool, state: str | None, as_json: bool, if_configured: bool) -> None:
    """Send this node's standard documents to the county platform itself ([direct], docs/interop.md §6)."""
    from . import direct as sender

    try:
        prof = sender.profile(node)
    except SyncError as e:
        raise CliError(str(e))
    if show:
        rows = sender.listing(node.store, state=state)
        if as_json:
            click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
            return
        for r in rows:
            click.echo(f"{r['state']:9} {r['kind']} {r['record_id']} v{r['version']} {r['doc_id'] or '-'}"
                       + (f": {r['reason']}" if r["reason"] else ""))
        return
    if prof is None:
        if if_configured:
            click.echo("direct: [direct] kind is not set: this node's records reach the county through the hub",
                       err=True)
            return
        raise CliError("this node does not send to the county platform itself: set [direct] kind and target "
                       "(docs/interop.md §6), or let the hub forward its records")
    if once:
        counts = sender.send_once(node, now=node.clock.now)
        click.echo(f"direct: {json.dumps(counts, sort_keys=True)}", err=True)
        waiting = node.store.scalar("SELECT count(*) FROM direct_deliveries WHERE state != 'delivered'")
        sys.exit(1 if waiting else 0)
    _direct_loop(node, sender)


def _direct_loop(node: Node, sender) -> None:
    """Rounds every [direct] interval_seconds until SIGTERM (which ends it after the current send's round)."""
    import logging
    import signal
    import threading

    log = logging.getLogger(__name__)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        try:
            log.info("direct: %s", json.dumps(sender.send_once(node, now=node.clock.now), sort_keys=True))
        except Exception as e:      # the round as a whole failed (the store): said, and tried again
            click.echo(f"direct: round failed: {e.__class__.__name__}: {e}", err=True)
        stop.wait(node.config["direct"]["interval_seconds"])
