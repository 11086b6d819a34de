"""Subcommands of the appliance: update, doctor, firstboot, backup-nightly (entry points in
pyproject.toml, group clinic_edge.commands)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge.core.cli_error import CliError
from edge.core import durable
from edge.core.errors import CoreError
from edge.core.node import Node


@click.group()
def update() -> None:
    """Signed updates: apply a bundle (with automatic rollback), or make one (release side)."""


@update.command("apply")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def update_apply(node: Node, bundle_path: Path) -> None:
    """Verify BUNDLE, install it next to the running version, switch, and roll back if unhealthy."""
    from . import update as upd
    from .errors import BundleRefused, UpdateFailed

    try:
        out = upd.apply(node, bundle_path)
    except BundleRefused as e:
        upd.record_refused(node, bundle_path, e)
        raise CliError(str(e), 3)
    except UpdateFailed as e:
        raise CliError(str(e), 4)
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"updated {out.old or '(none)'} -> {out.new}; database backup before the switch: {out.backup}")


@update.command("apply-pending")
@click.pass_obj
def update_apply_pending(node: Node) -> None:
    """Apply the newest bundle in <data>/updates/ready (fetched by sync), then file it under
    updates/done or updates/failed. Run as root by clinic-edge-update.path/.service."""
    from . import update as upd
    from .bundle import version_key
    from .errors import BundleRefused, UpdateFailed

    updates = node.data_dir / "updates"
    ready = sorted((updates / "ready").glob("*.bundle"), key=lambda p: version_key(p.name[:-len(".bundle")]))
    if not ready:
        click.echo("no bundle waiting in " + str(updates / "ready"))
        return
    path = ready[-1]

    def file_under(sub: str) -> Path:
        durable.make_dir(updates / sub)     # root here: the folder stays the sync service's to read
        return path.replace(updates / sub / path.name)

    try:
        try:
            out = upd.apply(node, path)
        except BundleRefused as e:
            upd.record_refused(node, path, e)
            raise CliError(f"{e}; moved to {file_under('failed')}", 3)
        except UpdateFailed as e:
            raise CliError(f"{e}; moved to {file_under('failed')}", 4)
        except CoreError as e:
            upd.record_refused(node, path, e)
            raise CliError(f"{e}; moved to {file_under('failed')}")
        click.echo(f"updated {out.old or '(none)'} -> {out.new}; bundle moved to {file_under('done')}")
    finally:
        _ask_sync_now(node)


def _ask_sync_now(node: Node) -> None:
    """The county learns the outcome (ok, rolled back and why) at once, not at the nightly sync:
    the sync daemon restarted on the new release before the outcome was written."""
    from edge.core import status

    view = status.contribution("sync")
    if view is not None:
        view.request_now(node)


@update.command("build-bundle")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="the release private key (PEM)")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--plugin", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="the broker's journal plugin built for the boxes (clinic_journal-<hash>.so); needed when "
                   "this version changes its source (docs/operations.md)")
@click.argument("wheel_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def update_build(key_path: Path, out: Path, wheel_dir: Path, plugin: Path | None) -> None:
    """Sign every wheel in WHEEL_DIR (`pip wheel . -w WHEEL_DIR`) into one update bundle."""
    from . import bundle

    try:
        m = bundle.build(wheel_dir, bundle.load_private_key(key_path), out, plugin=plugin)
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"bundle {out}: version {m.version}, {len(m.wheels)} wheels"
               + (f", journal plugin {plugin.name}" if plugin else ""))


@update.command("keygen")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--suite", type=click.Choice(["ed25519", "sm"]), default="ed25519", show_default=True,
              help="the county's crypto suite: Ed25519, or SM2 with SM3 (docs/crypto-suites.md)")
def update_keygen(out_dir: Path, suite: str) -> None:
    """Make a release key pair: OUT/release.key (keep it offline) and OUT/release.pub (goes on nodes)."""
    from . import bundle

    try:
        public = bundle.make_release_key(out_dir / "release.key", out_dir / "release.pub", suite)
    except FileExistsError:
        raise CliError(f"{out_dir / 'release.key'} exists; refusing to overwrite a release key")
    click.echo(f"release public key: {public}")


@update.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def update_status(node: Node, as_json: bool) -> None:
    """The running version and the last update's result."""
    from .update import Layout

    status = {"current": Layout(Path(node.config["update"]["prefix"])).current_version(),
              "last": node.read_status("update")}
    click.echo(json.dumps(status) if as_json else f"current {status['current']}; last update: {status['last']}")


@click.command("backup-nightly")
@click.option("--any-folder", is_flag=True, help="copy to [appliance] usb_backup_dir even if it is not a mount")
@click.pass_obj
def backup_nightly(node: Node, any_folder: bool) -> None:
    """Back up the database, keep the newest N, copy to the USB backup drive when one is mounted."""
    from .backup import nightly

    try:
        for p in nightly(node, require_mount=not any_folder):
            click.echo(f"backup written: {p}")
    except CoreError as e:
        raise CliError(str(e))


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def doctor(node: Node, as_json: bool) -> None:
    """Check what county IT asks about on the phone; print each problem with its fix."""
    from . import doctor as doc

    findings = doc.examine(node)
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in findings], ensure_ascii=False, indent=1))
    else:
        for f in findings:
            click.echo(f.line())
            if f.fix:
                click.echo(f"    fix: {f.fix}")
    sys.exit(1 if any(f.level == "problem" for f in findings) else 0)


@click.command()
@click.option("--boot-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the provisioning file (default: [appliance] boot_file)")
@click.option("--attempts", type=int, default=0, help="enrollment attempts (0 = until it works)")
@click.pass_obj
def firstboot(node: Node, boot_file: Path | None, attempts: int) -> None:
    """First boot: read the provisioning file, make keys, enroll, create the first admin."""
    from . import firstboot as fb
    from .errors import ProvisioningError

    try:
        result = fb.run(node, boot_file or Path(node.config["appliance"]["boot_file"]), attempts=attempts or None)
    except ProvisioningError as e:
        raise CliError(str(e), 3)
    click.echo(result)


@click.command("setup-code")
@click.pass_obj
def setup_code(node: Node) -> None:
    """A new one-time setup code for the first admin (on the box's console or over SSH), shown here,
    in the journal and on the boot partition; the old one stops working. Only while setup is unfinished."""
    from edge.core import first_admin

    from .firstboot import announce_setup_code

    if not first_admin.pending(node):
        raise CliError("setup is finished (the admin chose a password): change it with `clinic-edge user passwd admin`")
    hours = node.config["appliance"]["setup_code_hours"]
    code = first_admin.issue_code(node, hours=hours)
    announce_setup_code(code, hours, Path(node.config["appliance"]["boot_file"]).parent)
