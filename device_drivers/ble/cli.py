"""`clinic-edge device scan`: nearby Bluetooth health devices, by the services they advertise."""
from __future__ import annotations

import json

import click

from edge.core.cli_error import CliError
from edge.core.node import Node

from . import gatt, state, tables
from .errors import BleLinkError


def nearby(adapter, store, seconds: float, *, everything: bool = False) -> list[dict]:
    """One scan as rows: address, name, rssi, health services, suggested kind, registered id."""
    import asyncio      # here, not with the module: `clinic-edge ingest` loads this file too (docs/operations.md)

    adverts = asyncio.run(adapter.scan(seconds))
    known = state.registered(store)
    rows = []
    for a in sorted(adverts, key=lambda a: -(a.rssi if a.rssi is not None else -999)):
        health = [s for s in a.service_uuids if s in gatt.SERVICES]
        if not health and not everything:
            continue
        rows.append({"address": a.address, "name": a.name, "rssi": a.rssi,
                     "services": [gatt.SERVICES[s] for s in health],
                     "kind": gatt.SERVICE_KIND[health[0]] if health else None,
                     "registered_as": (known.get(a.address) or {}).get("id")})
    return rows


@click.command("scan")
@click.option("--seconds", type=float, default=8.0, show_default=True, help="how long to listen")
@click.option("--all", "everything", is_flag=True, help="also list devices that advertise no health service")
@click.option("--adapter", default=None, help="BlueZ adapter (default: [drivers.ble] adapter or hci0)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def scan(node: Node, seconds: float, everything: bool, adapter: str | None, as_json: bool) -> None:
    """List nearby Bluetooth health devices (BP, glucose, SpO2, thermometer, scale, heart rate).

    Register one with: clinic-edge device add ID --transport ble --kind KIND --address ADDRESS
    (add --resident ID to bind a personal device to a resident). Some devices must be paired
    first, in pairing mode: see docs/ble.md.
    """
    try:
        from .bleak_adapter import BleakAdapter
    except ImportError as e:
        raise CliError(f"the Bluetooth library is not installed ({e}); install clinic-edge with its dependencies")
    name = adapter or (node.config.driver("ble") or {}).get("adapter", "hci0")
    try:
        rows = nearby(BleakAdapter(name), node.store, seconds, everything=everything)
    except BleLinkError as e:
        raise CliError(str(e))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    if not rows:
        click.echo(f"no Bluetooth health device heard in {seconds:g}s (is it switched on, in pairing or "
                   "transfer mode, and within a few metres?)")
        return
    for r in rows:
        click.echo(f"{r['address']}  {r['rssi'] if r['rssi'] is not None else '?':>4} dBm  "
                   f"{(r['name'] or '-')[:24]:<24} {', '.join(r['services']) or '-':<28} "
                   + (f"registered as {r['registered_as']}" if r["registered_as"] else
                      f"add: clinic-edge device add ID --transport ble --kind {r['kind'] or 'other'} "
                      f"--address {r['address']}"))


@click.command("pair")
@click.argument("device")
@click.option("--passkey", type=click.IntRange(0, 999999), default=None,
              help="the 6-digit passkey the device shows (Accu-Chek...); omit for Just Works (Omron, A&D)")
@click.option("--seconds", type=float, default=60.0, show_default=True, help="give up after this long")
@click.option("--adapter", default=None, help="BlueZ adapter (default: [drivers.ble] adapter or hci0)")
@click.pass_obj
def pair(node: Node, device: str, passkey: int | None, seconds: float, adapter: str | None) -> None:
    """Pair and trust a Bluetooth device (put it in pairing mode first).

    DEVICE is a registered device id or a Bluetooth address. Registers a BlueZ pairing agent for
    the duration of the command (as `bluetoothctl` does); see docs/ble.md for pairing modes.
    """
    from edge.core.errors import CoreError

    address = tables.address_of(node.store, device)
    try:
        address = address or state.check_address(device)
    except CoreError:
        raise CliError(f"{device!r} is neither a registered Bluetooth device with an address nor a Bluetooth address")
    try:
        from .pairing import pair as pair_device
    except ImportError as e:
        raise CliError(f"the D-Bus library is not installed ({e})")
    name = adapter or (node.config.driver("ble") or {}).get("adapter", "hci0")
    import asyncio

    try:
        asked = asyncio.run(pair_device(address, adapter=name, passkey=passkey, timeout=seconds))
    except BleLinkError as e:
        raise CliError(str(e))
    click.echo(f"{address} paired and trusted" + (" (it was already paired)" if "already paired" in asked else ""))
