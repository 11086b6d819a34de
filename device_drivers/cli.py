"""Subcommands the drivers add to `clinic-edge` (entry-point group clinic_edge.commands)."""
from __future__ import annotations

import json
import os
import sys
import threading

import click

from edge.core.cli_error import CliError
from edge.core import devices
from edge.core.errors import CoreError
from edge.core.node import Node

from .ble.cli import pair as ble_pair, scan as ble_scan
from .errors import DriverError


@click.command()
@click.pass_obj
def ingest(node: Node) -> None:
    """Run every enabled device driver (MQTT and [drivers.*]) until stopped."""
    from . import runner

    try:
        sys.exit(runner.run(node))
    except (CoreError, DriverError) as e:
        raise CliError(str(e))


@click.group()
def device() -> None:
    """Register, list and remove the clinic's devices."""


@device.command("add")
@click.argument("device_id")
@click.option("--kind", type=click.Choice(devices.KINDS), required=True)
@click.option("--transport", type=click.Choice(["mqtt", "ble", "astm", "hl7", "lines"]), default="mqtt",
              show_default=True)
@click.option("--name", default="", help="a label the doctor recognises, e.g. 诊室血压计")
@click.option("--resident", "resident_id", default=None, help="bind a personal device to this resident id")
@click.option("--address", default=None, help="Bluetooth address of a BLE device (see `device scan`)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def device_add(node: Node, device_id, kind, transport, name, resident_id, address, as_json) -> None:
    """Register a device; MQTT devices get their own broker account (password shown once)."""
    from .ble import state as ble_state
    from .mqtt import broker

    try:
        address = ble_state.check_new(node.store, address, transport)
        password = devices.add(node.store, device_id, kind=kind, transport=transport, name=name,
                               resident_id=resident_id, now=node.clock.now(), actor="cli")
        if address:
            ble_state.set_address(node.store, device_id, address, now=node.clock.now(), actor="cli")
    except CoreError as e:
        raise CliError(str(e))
    reloaded = broker.reload(node) if transport == "mqtt" else False
    # "reloaded" only when the broker really took the new files: the new account can log in
    taken = bool(reloaded and password and broker.accepts_login(node, device_id, password))
    if as_json:
        click.echo(json.dumps({"id": device_id, "username": device_id, "password": password,
                               "topic": f"devices/{device_id}/readings"}))
        return
    click.echo(f"device {device_id} registered")
    if password:
        click.echo(f"MQTT username: {device_id}\nMQTT password: {password}   (shown once; store it on the device)")
        click.echo(f"publish to: devices/{device_id}/readings (QoS 1, SenML JSON)")
        if taken:
            click.echo("broker reloaded: the device can log in")
        elif reloaded:
            click.echo("broker files written, but the running broker does not accept the device yet: restart it"
                       " (systemctl restart clinic-edge-broker)", err=True)
        else:
            click.echo("broker files written (the broker reads them when it starts)")


@device.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def device_list(node: Node, as_json: bool) -> None:
    """List registered devices with their last reading and last error."""
    from .ble import state as ble_state

    rows = [{k: v for k, v in d.items() if k != "secret_hash"} for d in devices.active(node.store)]
    ble_state.annotate(node.store, rows)   # BLE address and last session of Bluetooth devices
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for d in rows:
        click.echo(f"{d['id']:<20} {d['kind']:<11} {d['transport']:<6} "
                   + (f"{d['ble_address']} " if d.get("ble_address") else "")
                   + f"last reading {d['last_reading_at'] or '-'}"
                   + (f"  last error {d['last_error_at']}: {d['last_error']}" if d["last_error"] else ""))


@device.command("remove")
@click.argument("device_id")
@click.pass_obj
def device_remove(node: Node, device_id: str) -> None:
    """Remove a device: its broker account is closed; its readings stay."""
    from .mqtt import broker

    try:
        devices.remove(node.store, device_id, now=node.clock.now(), actor="cli")
    except CoreError as e:
        raise CliError(str(e))
    broker.reload(node)
    click.echo(f"device {device_id} removed; its readings are kept")


device.add_command(ble_scan)   # `device scan`: nearby Bluetooth health devices
device.add_command(ble_pair)   # `device pair`: bond a Bluetooth device through a BlueZ agent


@click.group()
def broker() -> None:
    """The clinic's private MQTT broker (mosquitto)."""


@broker.command("config")
@click.pass_obj
def broker_config(node: Node) -> None:
    """Write mosquitto.conf, passwd and acl from the device registry and print the conf path."""
    from .mqtt import broker as b

    click.echo(b.write_files(node))


@broker.command("run")
@click.option("--listen", default=None, help="HOST:PORT (default: [broker] listen)")
@click.pass_obj
def broker_run(node: Node, listen: str | None) -> None:
    """Write the broker's files and replace this process with mosquitto."""
    from .mqtt import broker as b

    from .mqtt.journal_plugin import JournalPluginError

    try:
        conf = b.write_files(node, listen)
    except JournalPluginError as e:
        raise CliError(str(e))
    exe = node.config["broker"]["mosquitto"]
    node.close()
    b.pid_file(node).write_text(str(os.getpid()))  # exec keeps the pid: this is mosquitto's
    try:
        os.execvp(exe, [exe, "-c", str(conf)])
    except OSError as e:
        raise CliError(f"cannot start {exe}: {e}. Install it: sudo apt-get install mosquitto")


@click.command()
@click.option("--credentials", type=click.Path(exists=True, dir_okay=False), required=True,
              help="JSON {device_id: {password, kind}} written by the demo")
@click.option("--rate", type=float, default=0.5, show_default=True, help="readings per second")
@click.option("--seed", type=int, default=None)
@click.pass_obj
def simulate(node: Node, credentials: str, rate: float, seed: int | None) -> None:
    """Publish realistic readings from simulated devices (used by `clinic-edge demo`)."""
    import signal

    from . import simulate as sim
    from .mqtt.broker import broker_address

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    host, port = broker_address(node.config["mqtt"]["url"])
    with open(credentials) as f:
        creds = json.load(f)
    sim.run(host, port, creds, rate=rate, stop=stop, seed=seed)
