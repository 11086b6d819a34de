"""The adapter interface on the real radio, through bleak (BlueZ over D-Bus on Linux).

Thin on purpose: every library exception becomes one of our BleLinkError subclasses with a
message county IT can act on. Importing this module needs bleak installed but no radio; the
radio is touched only by scan() and connect(). bleak's BlueZ backend registers no pairing agent
(docs/devices.md, real devices and BlueZ): devices that need a bond are paired once with `bluetoothctl` (docs/ble.md).
`tests/test_ble_bleak_conformance.py` checks that the bleak calls used here exist with compatible
signatures in the installed bleak.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDBusError, BleakDeviceNotFoundError, BleakError

from .adapter import Advertisement, Notify
from .errors import BleLinkError, BondLost, DeviceNotFound, GattRefused, LinkLost, NoRadio
from .gatt import short, uuid16

AUTH_ERRORS = ("AuthenticationFailed", "AuthenticationRejected", "AuthenticationCanceled",
               "Insufficient Authentication", "Insufficient Encryption", "NotPermitted", "NotAuthorized")
NO_RADIO_HINT = ("no Bluetooth radio is available: {detail}. On the appliance check `systemctl status bluetooth` "
                 "and `bluetoothctl list`; this machine may simply have no Bluetooth adapter")


def translate(e: BaseException, what: str) -> BleLinkError:
    """A bleak/D-Bus/OS exception as one of ours (the caller raises it `from e`)."""
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, BleakDeviceNotFoundError):
        return DeviceNotFound(f"{what}: the device is not in range or BlueZ has forgotten it")
    if isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
        return NoRadio(NO_RADIO_HINT.format(detail="the system D-Bus (BlueZ) is not running"))
    if isinstance(e, BleakDBusError):
        name = e.dbus_error or ""
        if any(a in name or a in text for a in AUTH_ERRORS):
            return BondLost(f"{what}: authentication failed (bond lost or never paired) [{name}]")
        if "ServiceUnknown" in name or "UnknownObject" in name or "NotReady" in name:
            return NoRadio(NO_RADIO_HINT.format(detail=name))
        if "ATT error" in text or name.endswith(".Failed"):
            return GattRefused(f"{what}: the device refused: {e}")
        return LinkLost(f"{what}: {e}")
    if isinstance(e, BleakError):
        if "adapter" in str(e).lower() and ("not found" in str(e).lower() or "no bluetooth" in str(e).lower()):
            return NoRadio(NO_RADIO_HINT.format(detail=str(e)))
        if any(a in str(e) for a in AUTH_ERRORS):
            return BondLost(f"{what}: authentication failed (bond lost or never paired)")
        if "not connected" in str(e).lower():
            return LinkLost(f"{what}: the device disconnected")
        return LinkLost(f"{what}: {e}")
    if isinstance(e, (EOFError, ConnectionError, OSError)):
        return LinkLost(f"{what}: {text}")
    return LinkLost(f"{what}: unexpected {text}")


class BleakAdapter:
    def __init__(self, adapter: str = "hci0", *, client_backend=None):
        self.adapter = adapter
        self.client_backend = client_backend      # bleak's own `backend=` hook (tests: a replaying backend)

    async def scan(self, seconds: float) -> list[Advertisement]:
        try:
            found = await BleakScanner.discover(timeout=seconds, return_adv=True, adapter=self.adapter)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise translate(e, "scan") from e
        out = []
        for device, adv in found.values():
            out.append(Advertisement(device.address.upper(), adv.local_name or device.name, adv.rssi,
                                     tuple(short(u) for u in adv.service_uuids)))
        return out

    async def connect(self, address: str, *, timeout: float, on_disconnect: Callable[[], None]) -> "BleakLink":
        client = BleakClient(address, disconnected_callback=lambda _client: on_disconnect(), timeout=timeout,
                             backend=self.client_backend, adapter=self.adapter)
        try:
            await client.connect()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise translate(e, f"connect to {address}") from e
        return BleakLink(client, address)


class BleakLink:
    def __init__(self, client: BleakClient, address: str):
        self.client, self.address = client, address

    def characteristics(self) -> set[str]:
        return {short(c.uuid) for s in self.client.services for c in s.characteristics}

    async def start_notify(self, uuid: str, callback: Notify) -> None:
        await self._call(f"enable notifications on {uuid}",
                         self.client.start_notify(uuid16(uuid), lambda _char, data: callback(bytes(data))))

    async def write(self, uuid: str, data: bytes, *, response: bool = True) -> None:
        await self._call(f"write {uuid}", self.client.write_gatt_char(uuid16(uuid), data, response=response))

    async def disconnect(self) -> None:
        await self._call("disconnect", self.client.disconnect())

    async def _call(self, what: str, awaitable):
        try:
            return await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise translate(e, f"{self.address}: {what}") from e
