"""`clinic-edge`: the front door. Subcommands of device_drivers and sync arrive through the
`clinic_edge.commands` entry-point group, so nothing in edge/ imports them."""
from __future__ import annotations

import json
import logging
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import click

from edge.core.cli_error import CliError
from edge.core import audit, config as config_mod
from edge.core.errors import CoreError
from edge.core.ingest import latest
from edge.core.node import Node
from edge.core.reading import json_safe

log = logging.getLogger("edge.cli")

COMMAND_GROUP = "clinic_edge.commands"
# edge's own commands that pull in heavy libraries load only when used (ingest must stay small)
LAZY_COMMANDS = {"user": "edge.users_cli:user"}


class NodeGroup(click.Group):
    """A click group that also lists the commands other packages registered."""

    def _plugins(self) -> dict:
        found = {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}
        for name, target in LAZY_COMMANDS.items():
            found.setdefault(name, EntryPoint(name, target, COMMAND_GROUP))
        return found

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self._plugins():
            cmd = self._plugins()[name].load()
        return cmd


@click.group(cls=NodeGroup)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML config file (default: $CLINIC_EDGE_CONFIG, /etc/clinic-edge/config.toml, built-in)")
@click.option("-v", "--verbose", is_flag=True, help="log debug details")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """clinic-edge: the village clinic's node."""
    os.umask(0o077)   # what any command makes in the data directory is 0600 / 0700, whatever the caller's umask
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("apscheduler", "waitress.queue"):  # their INFO lines drown what matters
        logging.getLogger(chatty).setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        cfg = config_mod.load(config_path)
    except config_mod.ConfigError as e:
        raise CliError(str(e))
    ctx.obj = Node(cfg)
    ctx.call_on_close(ctx.obj.close)


def open_store(node: Node):
    try:
        return node.store
    except CoreError as e:
        raise CliError(str(e))


@main.command()
@click.pass_obj
def init(node: Node) -> None:
    """Create the data directory and database (safe to run again)."""
    store = open_store(node)
    click.echo(f"store ready: {store.path}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
@click.option("--limit", default=100, show_default=True)
@click.pass_obj
def readings(node: Node, as_json: bool, limit: int) -> None:
    """Print stored readings, newest first."""
    rows = latest(open_store(node), limit=limit)
    if as_json:
        # a value stored by an older version may be non-finite: printed as null, never as NaN
        click.echo(json.dumps(json_safe(rows), ensure_ascii=False, indent=1, allow_nan=False))
        return
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:g}"
        click.echo(f"{r['effective_time']}  {r['device_id']:<16} {r['code']:<8} {value:>7} {r['unit']:<7} "
                   f"{r['status']}{' (' + r['reason'] + ')' if r['reason'] else ''}")


@main.command()
@click.argument("dest", type=click.Path())
@click.pass_obj
def backup(node: Node, dest: str) -> None:
    """Copy the database to DEST (a file or folder) with SQLite's online backup; safe while running."""
    try:
        out = open_store(node).backup(dest, now=node.clock.now())
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"backup written: {out}")


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="do not ask")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the county's backup.key, for a sealed (encrypted) nightly backup")
@click.pass_obj
def restore(node: Node, source: str, yes: bool, key_file: str | None) -> None:
    """Replace the database with a backup (stop the services first)."""
    import tempfile

    from edge.appliance import backup
    from edge.core import sealed
    from edge.core.store import processes_using

    target = node.config.store_path
    holders = processes_using(target)
    if holders:
        raise CliError(f"the database {target} is in use by process {', '.join(map(str, holders))}: stop the "
              f"services first (sudo systemctl stop clinic-edge-web clinic-edge-ingest clinic-edge-sync clinic-edge-direct), "
              f"then restore; nothing was changed")
    if sealed.is_sealed(Path(source)):
        if not key_file:
            raise CliError(f"{source} is encrypted to the county backup key: "
                           "give its private key with --key backup.key")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, plain = tempfile.mkstemp(prefix=".restore-", dir=target.parent)
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                sealed.unseal_stream(sealed.load_private(Path(key_file)), src, dst, backup.BACKUP_PURPOSE)
            field_key = backup.take_field_key(Path(plain))
            _restore_plain(target, plain, yes, source)
            if field_key is not None:
                _restore_field_key(node, field_key)
        except CoreError as e:
            raise CliError(f"{source}: {e}")
        finally:
            Path(plain).unlink(missing_ok=True)
        return
    try:
        _restore_plain(target, source, yes, source)
    except CoreError as e:
        raise CliError(f"{source} is not a usable backup: {e}")


def _restore_field_key(node: Node, text: str) -> None:
    from edge.appliance.backup import restore_field_key

    path = node.field_setup().key_path
    kept = restore_field_key(text, path)
    click.echo(f"restored the field key {path} (ID numbers and phones)")
    if kept:
        click.echo(f"the field key that was there is kept as {kept}", err=True)


def _restore_plain(target: Path, plain: str, yes: bool, source: str) -> None:
    """Checked first (integrity), then swapped in one durable rename (edge.appliance.backup)."""
    from edge.appliance.backup import restore_file

    if not yes:
        click.confirm(f"replace {target} with {source}?", abort=True)
    restore_file(Path(plain), target)
    click.echo(f"restored {target} from {source}")


@main.command("backup-key")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--suite", type=click.Choice(["ed25519", "sm"]), default="ed25519", show_default=True,
              help="the county's crypto suite: X25519 + AES-256-GCM, or SM2 + SM4-GCM (docs/crypto-suites.md)")
def backup_key(out_dir: Path, suite: str) -> None:
    """County IT, once: make OUT_DIR/backup.key (keep it offline) and backup.pub (goes into the
    image: image/build --backup-key). Nightly backups are sealed to backup.pub."""
    from edge.core import sealed

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        public = sealed.make_keypair(out_dir / "backup.key", out_dir / "backup.pub", suite)
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"{out_dir / 'backup.pub'}: {public}")
    click.echo(f"{out_dir / 'backup.key'}: keep it offline; `clinic-edge restore --key` needs it", err=True)


@main.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("verify")
@click.pass_obj
def audit_verify(node: Node) -> None:
    """Check the hash chain; name the first broken entry."""
    key_file = node.data_dir / "secrets" / audit.MAC_KEY_FILE
    try:
        key = key_file.read_bytes().strip() or None
    except OSError:          # not made yet, or not readable by this user: the seal is not checked
        key = None
    report = audit.verify(open_store(node).conn, mac_key=key)
    if report.ok:
        a = report.anchor
        anchored = f"; entries up to {a['seq']} match the county hub's anchor of {a['at']}" if a else \
            "; not yet anchored at a county hub"
        sealed = "" if key else " (the local seal was not checked: no readable audit key)"
        click.echo(f"audit chain intact: {report.entries} entries{anchored}{sealed}")
        return
    where = f" at entry {report.first_broken}" if report.first_broken is not None else ""
    click.echo(f"audit chain BROKEN{where}: {report.reason}", err=True)
    sys.exit(1)


@main.command()
@click.option("--listen", default=None, help="HOST:PORT (default: [web] listen)")
@click.option("--redirect-listen", default=None, help="HOST:PORT of the HTTP port that redirects to HTTPS")
@click.pass_obj
def serve(node: Node, listen: str | None, redirect_listen: str | None) -> None:
    """Run the web UI (cheroot): HTTPS with the node certificate, the HTTP port only redirects."""
    from edge.core import https, watchdog
    from edge.web import create_app, limits

    open_store(node)  # migrate and check before the first request
    web = node.config["web"]
    host, _, port = (listen or web["listen"]).rpartition(":")
    app = create_app(node=node)
    files = node_certificate(node) if web["tls"] else None
    if files:
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    elif web["tls"]:
        log.warning("no node certificate in %s yet (not enrolled): serving plain HTTP until enrollment",
                    node.data_dir / "tls")
    service = https.CherootService(limits.behind_proxy(app, node.config), host.strip("[]"), int(port), threads=8,
                                   cert=files and files[0], key=files and files[1], name="clinic-edge",
                                   max_body=limits.SERVER_BODY_LIMIT)
    click.echo(f"web UI on {'https' if files else 'http'}://{host}:{service.port}/", err=True)
    redirect = redirect_listen if redirect_listen is not None else web["redirect_listen"]
    redirector = None
    if redirect:   # before enrollment (no certificate) it serves the UI itself, so /setup is reachable
        rhost, _, rport = redirect.rpartition(":")
        redirector = https.CherootService(https.redirect_app(service.port, app) if files else app,
                                          rhost.strip("[]"), int(rport), threads=2 if files else 8,
                                          name="clinic-edge-redirect")
        redirector.run_in_thread()
        click.echo(f"http://{rhost}:{rport}/ " + ("redirects to HTTPS" if files else "serves the UI"), err=True)
    try:
        watchdog.serve_notified(service, lambda: watchdog.store_problem(node.config.store_path))
    finally:
        if redirector:
            redirector.close()


def node_certificate(node: Node) -> tuple[Path, Path] | None:
    """DATA/tls/node-cert.pem and node-key.pem from enrollment (docs/tls.md), if both are there."""
    cert, key = node.data_dir / "tls" / "node-cert.pem", node.data_dir / "tls" / "node-key.pem"
    return (cert, key) if cert.exists() and key.exists() else None


@main.command()
@click.option("--web-port", type=int, default=0, help="0 = a free port")
@click.option("--mqtt-port", type=int, default=0, help="0 = a free port")
@click.option("--rate", type=float, default=0.1, show_default=True, help="simulated readings per second (all devices)")
@click.pass_obj
def demo(node: Node, web_port: int, mqtt_port: int, rate: float) -> None:
    """Run a complete node on built-in defaults: broker, simulated devices, ingest, web."""
    from edge import demo as demo_mod

    sys.exit(demo_mod.run(node, web_port=web_port, mqtt_port=mqtt_port, rate=rate))


if __name__ == "__main__":  # pragma: no cover
    main()
