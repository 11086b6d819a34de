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

from edge.core import audit, config as config_mod
from edge.core.errors import CoreError
from edge.core.ingest import latest
from edge.core.node import Node

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


def _fail(message: str) -> None:
    click.echo(f"clinic-edge: {message}", err=True)
    sys.exit(2)


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
        _fail(str(e))
    ctx.obj = Node(cfg)
    ctx.call_on_close(ctx.obj.close)


def open_store(node: Node):
    try:
        return node.store
    except CoreError as e:
        _fail(str(e))


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
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
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
        out = open_store(node).backup(dest)
    except CoreError as e:
        _fail(str(e))
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

    target = node.config.store_path
    if sealed.is_sealed(Path(source)):
        if not key_file:
            _fail(f"{source} is encrypted to the county backup key: give its private key with --key backup.key")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, plain = tempfile.mkstemp(prefix=".restore-", dir=target.parent)
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                sealed.unseal_stream(sealed.load_private(Path(key_file)), src, dst, backup.BACKUP_PURPOSE)
            _restore_plain(target, plain, yes, source)
        except CoreError as e:
            _fail(f"{source}: {e}")
        finally:
            Path(plain).unlink(missing_ok=True)
        return
    try:
        _restore_plain(target, source, yes, source)
    except CoreError as e:
        _fail(f"{source} is not a usable backup: {e}")


def _restore_plain(target: Path, plain: str, yes: bool, source: str) -> None:
    from edge.core.store import Store

    Store(plain, migrate=False).close()
    if not yes:
        click.confirm(f"replace {target} with {source}?", abort=True)
    import shutil

    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    shutil.copyfile(plain, target)
    click.echo(f"restored {target} from {source}")


@main.command("backup-key")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def backup_key(out_dir: Path) -> None:
    """County IT, once: make OUT_DIR/backup.key (keep it offline) and backup.pub (goes into the
    image: image/build --backup-key). Nightly backups are sealed to backup.pub."""
    from edge.core import sealed

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        public = sealed.make_keypair(out_dir / "backup.key", out_dir / "backup.pub")
    except CoreError as e:
        _fail(str(e))
    click.echo(f"{out_dir / 'backup.pub'}: {public}")
    click.echo(f"{out_dir / 'backup.key'}: keep it offline; `clinic-edge restore --key` needs it", err=True)


@main.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("verify")
@click.pass_obj
def audit_verify(node: Node) -> None:
    """Check the hash chain; name the first broken entry."""
    report = audit.verify(open_store(node).conn)
    if report.ok:
        click.echo(f"audit chain intact: {report.entries} entries")
        return
    click.echo(f"audit chain BROKEN at entry {report.first_broken}: {report.reason}", err=True)
    sys.exit(1)


@main.command()
@click.option("--listen", default=None, help="HOST:PORT (default: [web] listen)")
@click.pass_obj
def serve(node: Node, listen: str | None) -> None:
    """Run the web UI with a production WSGI server (waitress)."""
    import waitress

    from edge.web import create_app

    open_store(node)  # migrate and check before the first request
    host, _, port = (listen or node.config["web"]["listen"]).rpartition(":")
    app = create_app(node=node)
    click.echo(f"web UI on http://{host}:{port}/", err=True)
    server = waitress.create_server(app, host=host, port=int(port), threads=8, ident="clinic-edge")
    from edge.core import watchdog

    watchdog.serve_notified(server, lambda: watchdog.store_problem(node.config.store_path))


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
