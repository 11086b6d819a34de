"""`clinic-edge hub ...`: the county's receiver (entry point `hub`).

PINNED: `hub serve` (listen from [hub] listen, storage from [hub] database), `hub node add NAME`
(the enrollment code is the last line), `hub import-bundle FILE`, `hub export --json`.
"""
from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import click

from edge.core.cli_error import CliError
from edge.core.node import Node

from sync import protocol, signing


class HubCliError(CliError):
    """The hub's subcommands refuse as `clinic-edge hub: <why>`."""
    prog = "clinic-edge hub"


def database_url(node: Node) -> str:
    url = node.config["hub"]["database"]
    if url:
        return url
    path = (node.data_dir / "hub" / "hub.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_store(node: Node, *, pool_size: int = 10, upgrade: bool = True):
    """The hub's database, its schema brought to head first unless `upgrade` is False."""
    from .storage import HubStore

    try:
        return HubStore(database_url(node), pool_size=pool_size, upgrade=upgrade)
    except Exception as e:  # noqa: BLE001 - any driver or schema error: say which URL and why
        url = shown_url(database_url(node))
        raise HubCliError(f"cannot open the hub database {url}: {e.__class__.__name__}: {_hidden(str(e), node)}")


def shown_url(url: str) -> str:
    """The database URL as it may be printed or logged: the password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: show only its scheme
        return url.split("://", 1)[0] + "://***"


def _hidden(text: str, node: Node) -> str:
    """`text` without the database password, should a driver's message repeat the URL."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(database_url(node)).password
    except Exception:  # noqa: BLE001
        return text
    return text.replace(password, "***") if password else text


def open_hub(node: Node, *, pool_size: int = 10):
    from .service import Hub, load_or_create_key

    cfg = node.config["hub"]
    key_path = Path(cfg["key_file"]) if cfg["key_file"] else node.data_dir / "hub" / "hub.key"
    sm_path = key_path.with_name("hub-sm.key")     # made when the county first chooses sm (docs/crypto-suites.md)
    sm_key = load_or_create_key(sm_path, "sm") if cfg["suite"] == "sm" or sm_path.exists() else None
    store = open_store(node, pool_size=pool_size)
    return Hub(store, load_or_create_key(key_path), sm_key=sm_key, suite=cfg["suite"],
               max_batch_bytes=cfg["max_batch_bytes"],
               code_ttl=timedelta(hours=cfg["code_ttl_hours"]), bundle_dir=node.data_dir / "hub" / "bundles",
               time_window=timedelta(seconds=cfg["time_window_seconds"]),
               nonce_retention=timedelta(seconds=cfg["nonce_retention_seconds"]))


@click.group()
def hub() -> None:
    """The county hub: receive every clinic's records exactly once."""


@hub.command()
@click.option("--listen", default=None, help="HOST:PORT (default: [hub] listen)")
@click.pass_obj
def serve(node: Node, listen: str | None) -> None:
    """Run the hub with a production WSGI server (cheroot), over HTTPS with the county CA."""
    from . import ca as ca_mod, schema
    from .app import create_app
    from edge.core.https import CherootService
    from .service import utcnow

    cfg = node.config["hub"]
    threads = cfg["threads"]
    h = open_hub(node, pool_size=threads)
    listen = listen or cfg["listen"]
    host, _, port = listen.rpartition(":")
    county = ca_mod.load_or_create(hub_dir(node))
    names = ca_mod.server_names(cfg["names"], listen)
    cert = key = None
    if cfg["tls"]:
        cert, key = county.server_files(names, now=utcnow())
    scheme = "https" if cfg["tls"] else "http"
    click.echo(f"hub database: {schema.change_text(*h.store.migrated)}", err=True)
    click.echo(f"hub on {scheme}://{host}:{port}/ (database {h.store.engine.url.render_as_string()}); "
               f"hub key fingerprint {signing.fingerprint(h.key)}"
               + (f", sm key {signing.fingerprint(h.sm_key)}" if h.sm_key else "")
               + f"; suite of new codes {h.suite}; county CA {county.dir / 'county-ca.pem'}",
               err=True)
    app = create_app(h, ca=county, server_names=names, uploads_in_service=cfg["uploads_in_service"],
                     busy_retry_max_seconds=cfg["busy_retry_max_seconds"])
    app.config["CLINIC_EDGE_DEID"] = (deid_key_path(node), cfg["deid_min_cell"])   # docs/county.md
    service = CherootService(app, host.strip("[]"), int(port),
                             threads=threads, cert=cert, key=key, name="ce-hub", max_body=body_limit(h),
                             tickets=1)   # a node keeps one session to resume (docs/tls.md)
    from edge.core import watchdog  # systemd Type=notify + WatchdogSec (issue 8)

    watchdog.serve_notified(service, lambda: None)


def hub_dir(node: Node) -> Path:
    return node.data_dir / "hub"


def deid_key_path(node: Node) -> Path:
    """The county's de-identification key: [hub] deid_key_file, else hub/deid.key (never in the database)."""
    path = node.config["hub"]["deid_key_file"]
    return Path(path) if path else hub_dir(node) / "deid.key"


@hub.group("ca")
def ca_group() -> None:
    """The county certificate authority (signs every node's and the hub's certificate)."""


@ca_group.command("init")
@click.pass_obj
def ca_init(node: Node) -> None:
    """Create the county CA now (else `hub serve` creates it on first start)."""
    from . import ca as ca_mod

    county = ca_mod.load_or_create(hub_dir(node))
    click.echo(f"county CA {county.dir / 'county-ca.pem'} (SHA-256 fingerprint {county.fingerprint})")


@ca_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.pass_obj
def ca_export(node: Node, file: Path | None) -> None:
    """Write the county root certificate (PEM) to FILE, e.g. county-ca.crt, or print it."""
    from . import ca as ca_mod

    county = ca_mod.load(hub_dir(node))
    if county is None:
        raise HubCliError("no county CA yet: run `clinic-edge hub ca init` (or start `hub serve` once)")
    if file is None:
        click.echo(county.pem.decode(), nl=False)
        return
    file.write_bytes(county.pem)
    click.echo(f"wrote {file} (SHA-256 fingerprint {county.fingerprint}); install it as a trusted root "
               "certification authority on each clinic PC and tablet (README: trusting the county root)")


def body_limit(h) -> int:
    """Largest request body the server reads: one batch plus room for headers; anything larger is
    refused with 413 from its Content-Length, before a byte of the body is read or spooled."""
    from .app import BODY_SLACK

    return h.max_batch_bytes + BODY_SLACK


@hub.group("node")
def node_group() -> None:
    """Register clinics (nodes)."""


@node_group.command("add")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print name, code and hub key fingerprint as JSON")
@click.option("--suite", type=click.Choice(["ed25519", "sm"]), default=None,
              help="the crypto suite the node enrolls in (default: [hub] suite)")
@click.option("--re-enroll", is_flag=True, help="a code for a node already enrolled: it enrolls again (e.g. in "
              "the sm suite) and what it signed before still verifies")
@click.pass_obj
def node_add(node: Node, name: str, as_json: bool, suite: str | None, re_enroll: bool) -> None:
    """Register NAME and print a one-time enrollment code (last line)."""
    import re

    from .service import utcnow

    if not re.fullmatch(r"[\w.-]{1,64}", name):
        raise HubCliError("a node name is 1-64 letters, digits, '.', '_' or '-'")
    h = open_hub(node)
    existing = h.store.node(name)
    if existing and existing["pubkey"] and not re_enroll:
        raise HubCliError(f"node {name} is already enrolled (--re-enroll gives it a code to enroll again)")
    suite = suite or h.suite
    if suite == "sm" and h.sm_key is None:
        raise HubCliError("this hub has no sm key yet: set [hub] suite = \"sm\" (it is made at the next start) "
                          "and run this again")
    code = h.add_node(name, now=utcnow(), suite=suite)
    hours = int(h.code_ttl.total_seconds() // 3600)
    fp = signing.fingerprint(h.key_for(suite))
    if as_json:
        click.echo(json.dumps({"node": name, "code": code, "hub_key": fp, "suite": suite, "expires_hours": hours}))
        return
    click.echo(f"node {name} registered; enroll it within {hours} h with:")
    click.echo(f"  clinic-edge enroll --hub URL --hub-key {fp} --code {code}")
    click.echo("or on the boot partition's clinic-edge.toml, section [hub]:")
    click.echo(f'  code = "{code}"')
    click.echo(f'  hub_key = "{fp}"')
    click.echo(f"hub key fingerprint: {fp}")
    click.echo(code)


@node_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def node_list(node: Node, as_json: bool) -> None:
    """Show every node with its last contact and reported status."""
    from .dashboard import node_rows
    from .service import utcnow

    store = open_hub(node).store
    rows, refused = node_rows(store, utcnow()), store.refusal_counts()
    for r in rows:     # signatures the hub refused, and why: docs/crypto-suites.md
        r["refused_signatures"] = refused.get(r["name"], 0)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        click.echo(f"{r['name']:<24} {r.get('last_contact', '?'):<16} records={r.get('records', '?')} "
                   f"backlog={r.get('backlog', '?')} refused={r['refused_signatures']}")


@hub.command("admission")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def admission(node: Node, as_json: bool) -> None:
    """Uploads every worker served and turned away (503) in the last minute (docs/hub.md)."""
    from . import admission_figures
    from .service import utcnow

    figures = admission_figures.recent(open_store(node), utcnow())
    if as_json:
        click.echo(json.dumps(figures, ensure_ascii=False, indent=1))
        return
    for w in figures["workers"]:
        click.echo(f"{w['host']} pid {w['pid']}: served={w['served']} turned_away={w['shed']} "
                   f"in_service={w['in_service']}/{w['limit'] or '-'} at={w['at']}")
    click.echo(f"total (workers seen in the last 2 min: {len(figures['workers'])}): "
               f"served={figures['served']} turned_away={figures['shed']}")
    if figures["shed"]:
        click.echo(admission_figures.busy_line(figures["shed"]))


@hub.command("import-bundle")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_bundle(node: Node, file: str) -> None:
    """Ingest a USB bundle from `clinic-edge sync export-bundle` (safe to import twice)."""
    from .service import HubError, utcnow

    h = open_hub(node)
    try:
        envelopes = protocol.open_bundle(h.keys(), Path(file).read_bytes())
    except protocol.ProtocolError as e:
        raise HubCliError(f"{file}: {e}")
    stored = failed = 0
    for raw in envelopes:
        try:
            receipt = h.accept_batch(raw, via="bundle", now=utcnow())
        except (HubError, protocol.ProtocolError) as e:
            failed += 1
            click.echo(f"refused a batch: {e}", err=True)
            continue
        stored += receipt["stored"] if receipt.get("batch") else 0
        if receipt["rejected"]:
            click.echo(f"batch {receipt['batch']}: {len(receipt['rejected'])} records rejected", err=True)
    click.echo(f"{len(envelopes)} batches read, {stored} new records stored, {failed} batches refused")
    if failed:
        sys.exit(1)


@hub.command("export")
@click.option("--json", "as_json", is_flag=True, required=True, help="print a JSON array")
@click.option("--node", "node_name", default=None, help="only this node's records")
@click.pass_obj
def export(node: Node, as_json: bool, node_name: str | None) -> None:
    """Print every record the hub holds (id, node, kind, version, payload, received_at); a
    resident's name_initials follow the node's current rule (sync/hub/residents.py)."""
    from .residents import as_read

    out = sys.stdout
    out.write("[")
    first = True
    for r in open_hub(node).store.export():
        if node_name and r["node"] != node_name:
            continue
        doc = {"id": r["record_id"], "node": r["node"], "kind": r["kind"], "version": r["version"],
               "batch": r["batch_id"], "received_at": r["received_at"], "payload": as_read(r["kind"], json.loads(r["payload"]))}
        out.write(("\n" if first else ",\n") + json.dumps(doc, ensure_ascii=False))
        first = False
    out.write("\n]\n")


@hub.command("push")
@click.argument("node_name")
@click.argument("kind")
@click.argument("record_id")
@click.option("--version", type=int, default=1, show_default=True)
@click.option("--payload", required=True, help="the record as JSON")
@click.pass_obj
def push(node: Node, node_name: str, kind: str, record_id: str, version: int, payload: str) -> None:
    """Queue a downlink record (resident, code table, config) for NODE_NAME ('*' = every node)."""
    from .service import KIND_RE, utcnow

    try:
        doc = json.loads(payload)
    except ValueError as e:
        raise HubCliError(f"--payload is not JSON: {e}")
    if not isinstance(doc, dict) or not KIND_RE.fullmatch(kind):
        raise HubCliError("--payload must be a JSON object and KIND lower-case letters")
    seq = open_hub(node).store.put_downlink(node_name, kind, record_id, version,
                                            json.dumps(doc, ensure_ascii=False), now=utcnow())
    click.echo(f"queued {kind} {record_id} v{version} for {node_name} (cursor {seq})")


@hub.group("bundle")
def bundle_group() -> None:
    """Update bundles sent to the clinics through the downlink."""


@bundle_group.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--node", "node_name", default="*", show_default=True, help="one node, or '*' for every node")
@click.pass_obj
def bundle_publish(node: Node, file: Path, node_name: str) -> None:
    """Keep FILE on the hub (by its sha256) and queue it for NODE; nodes fetch it on their next sync."""
    from . import bundles
    from .service import utcnow

    h = open_hub(node)
    try:
        doc = bundles.publish(h.store, h.bundle_dir, file, node_name, now=utcnow())
    except bundles.BundleError as e:
        raise HubCliError(str(e))
    click.echo(f"queued update bundle {doc['version']} ({doc['size']} bytes, sha256 {doc['sha256']}) "
               f"for {node_name} (cursor {doc['cursor']})")


@hub.group("user")
def user_group() -> None:
    """County IT's accounts for the hub's pages (viewer: the dashboard; county: the county view and its
    de-identified export; admin: also registers nodes)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "county", "admin"]), default="viewer", show_default=True)
@click.option("--generate", is_flag=True, help="make a random password and print it once")
@click.pass_obj
def user_add(node: Node, name: str, role: str, generate: bool) -> None:
    """Add an account NAME; with --generate the password is the last line, else it is asked for."""
    from edge.core import accounts as rules
    from edge.core.errors import ValidationError

    from . import accounts
    from .service import utcnow

    password = rules.new_password() if generate else click.prompt("password", hide_input=True,
                                                                   confirmation_prompt=True)
    try:
        accounts.add(open_hub(node).store, name, password, role=role, now=utcnow())
    except ValidationError as e:
        raise HubCliError(str(e))
    click.echo(f"hub user {name.strip().lower()} ({role}) added" + ("; password:" if generate else ""))
    if generate:
        click.echo(password)


@hub.command("audit")
@click.argument("node_name")
@click.pass_obj
def audit(node: Node, node_name: str) -> None:
    """The audit heads NODE_NAME reported; exit 1 if one did not extend the anchored chain."""
    heads = open_hub(node).store.audit_heads(node_name, limit=1000)
    if not heads:
        raise HubCliError(f"node {node_name} has reported no audit head yet")
    bad = [h for h in heads if h["problem"]]
    good = [h for h in heads if not h["problem"]]
    if good:
        click.echo(f"anchored: entry {good[0]['seq']} hash {good[0]['hash']} (reported {good[0]['received_at']})")
    for h in reversed(bad):
        click.echo(f"PROBLEM {h['received_at']}: {h['problem']} (reported entry {h['seq']})")
    if bad:
        sys.exit(1)
    click.echo(f"audit chain of {node_name}: every reported head extends the last ({len(good)} heads)")


@user_group.command("passwd")
@click.argument("name")
@click.option("--generate", is_flag=True, help="make a random password and print it once")
@click.pass_obj
def user_passwd(node: Node, name: str, generate: bool) -> None:
    """Give NAME a new password (also lifts its log-in lock-out); with --generate it is the last line."""
    from edge.core import accounts as rules
    from edge.core.errors import ValidationError

    from . import accounts

    password = rules.new_password() if generate else click.prompt("password", hide_input=True,
                                                                   confirmation_prompt=True)
    try:
        accounts.set_password(open_hub(node).store, name, password)
    except ValidationError as e:
        raise HubCliError(str(e))
    click.echo(f"new password for hub user {name}" + (":" if generate else ""))
    if generate:
        click.echo(password)


@bundle_group.command("withdraw")
@click.argument("which", metavar="SHA256|VERSION")
@click.pass_obj
def bundle_withdraw(node: Node, which: str) -> None:
    """Withdraw a published bundle: nodes that have not fetched it never do, nodes holding it
    unapplied (updates/ready) delete it at their next sync. An already applied one stays applied."""
    from . import bundles
    from .service import utcnow

    h = open_hub(node)
    done = bundles.withdraw(h.store, h.bundle_dir, which, now=utcnow())
    if not done:
        raise HubCliError(f"no published, not yet withdrawn update bundle {which!r} on this hub "
              f"(give its version or sha256, as `hub bundle publish` printed)")
    for d in done:
        click.echo(f"withdrew update bundle {d['version']} (sha256 {d['sha256']}) for {d['node']} (cursor {d['cursor']})")



from .db_cli import db_group  # noqa: E402 - `hub db`, in its own module (it imports this one lazily)

hub.add_command(db_group)

from .forward_cli import deliveries, forward, outbound_group  # noqa: E402 - issue 19.2, docs/interop.md

hub.add_command(outbound_group)
hub.add_command(forward)
hub.add_command(deliveries)

from .county_cli import county_group  # noqa: E402 - `hub county`, the county view's commands (docs/county.md)

hub.add_command(county_group)
