"""`clinic-edge hub outbound ...`, `hub forward` and `hub deliveries`: county IT configures where
the county platform takes documents, runs the forwarder, and sees each record's delivery
(docs/interop.md §5)."""
from __future__ import annotations

import json
import signal
import threading

import click

from edge.core.node import Node


def _store(node: Node):
    from .cli import open_store

    return open_store(node)


@click.group("outbound")
def outbound_group() -> None:
    """Where the county platform takes our documents (FHIR POST, CDA POST, or a 前置机 drop directory)."""


@outbound_group.command("add")
@click.argument("name")
@click.option("--county", required=True, help="the county's 6-digit division code")
@click.option("--kind", type=click.Choice(["fhir", "cda", "drop"]), required=True)
@click.option("--target", required=True, help="the platform's URL (fhir, cda) or an absolute directory (drop)")
@click.option("--clinic", "clinics", multiple=True, metavar="NODE=NAME[=CODE]",
              help="a node's clinic name and organisation code for the documents; with any, only these nodes")
@click.pass_obj
def outbound_add(node: Node, name: str, county: str, kind: str, target: str, clinics: tuple[str, ...]) -> None:
    """Add or change an outbound profile."""
    from .cli import HubCliError
    from .forwarding import ForwardingError, add_profile
    from .service import utcnow

    named = {}
    for item in clinics:
        parts = item.split("=")
        if len(parts) not in (2, 3) or not all(parts):
            raise HubCliError(f"--clinic {item!r}: write NODE=NAME or NODE=NAME=CODE")
        named[parts[0]] = {"name": parts[1], **({"code": parts[2]} if len(parts) == 3 else {})}
    try:
        p = add_profile(_store(node), name, county=county, kind=kind, target=target, clinics=named, now=utcnow())
    except ForwardingError as e:
        raise HubCliError(f"outbound profile {name}: {e}")
    click.echo(f"outbound profile {p.name}: {p.kind} -> {p.target} (county {p.county})")


@outbound_group.command("list")
@click.pass_obj
def outbound_list(node: Node) -> None:
    from .forwarding import profiles, totals

    store = _store(node)
    counts = totals(store)
    for p in profiles(store):
        states = " ".join(f"{s}={n}" for s, n in sorted(counts.get(p.name, {}).items())) or "no deliveries yet"
        click.echo(f"{p.name:<16} {p.kind:<5} {p.target}  county={p.county}  {states}")


@click.command("forward")
@click.option("--once", is_flag=True, help="send what is due now, then exit")
@click.option("--interval", type=click.IntRange(1, 86400), default=60, show_default=True,
              help="seconds between rounds")
@click.option("--limit", type=click.IntRange(1, 100000), default=500, show_default=True,
              help="documents per profile per round")
@click.pass_obj
def forward(node: Node, once: bool, interval: int, limit: int) -> None:
    """Forward the county's records to every outbound profile, tracking each delivery."""
    from .forwarding import forward_once
    from .service import utcnow

    store = _store(node)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        try:
            for name, counts in forward_once(store, now=utcnow, limit=limit).items():
                click.echo(f"{name}: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())), err=True)
        except Exception as e:  # noqa: BLE001 - the database went away: say so, try again next round
            if once:
                raise
            click.echo(f"hub forward: this round failed, next in {interval} s: {e.__class__.__name__}: {e}", err=True)
        if once or stop.wait(interval):
            return


@click.command("deliveries")
@click.option("--state", type=click.Choice(["pending", "retrying", "delivered", "refused"]), default=None)
@click.option("--profile", default=None)
@click.option("--limit", type=click.IntRange(1, 100000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
@click.pass_obj
def deliveries(node: Node, state: str | None, profile: str | None, limit: int, as_json: bool) -> None:
    """Each record's delivery to the county platform: refused ones (with the platform's reason) first."""
    from .forwarding import listing

    rows = listing(_store(node), state=state, profile=profile, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        why = f"  {r['reason']}" if r["reason"] and r["state"] != "delivered" else ""
        click.echo(f"{r['state']:<9} {r['profile']:<12} {r['node']}/{r['kind']}/{r['record_id']} v{r['version']}"
                   f"  tries={r['attempts']}{why}")
