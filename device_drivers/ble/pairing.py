"""Pair and trust a device through BlueZ, with our own pairing agent (org.bluez.Agent1).

bleak registers no agent (docs/devices.md, real devices and BlueZ), so `clinic-edge device pair ADDRESS [--passkey N]`
does what `bluetoothctl`'s agent does: register an agent over the system D-Bus (dbus-fast, which
bleak already depends on), make it the default, call Device1.Pair(), set Trusted, unregister.
Capability "KeyboardDisplay" when a passkey is given (Accu-Chek shows one), else
"NoInputNoOutput" (Just Works: Omron, A&D). Errors become our BleLinkError subclasses.
No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures from them.
"""
import asyncio

from dbus_fast import BusType, DBusError
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_method

from .errors import BleLinkError, BondLost, DeviceNotFound, NoRadio, StepTimeout

BLUEZ = "org.bluez"
AGENT_PATH = "/org/clinic_edge/pairing_agent"
REJECTED = "org.bluez.Error.Rejected"


class PairingAgent(ServiceInterface):
    """Answers BlueZ's questions during pairing: the passkey the device shows, or just yes."""

    def __init__(self, passkey=None):
        super().__init__("org.bluez.Agent1")
        self.passkey = passkey
        self.asked = []                     # what BlueZ asked, for the command's output and tests

    @dbus_method()
    def Release(self):
        self.asked.append("Release")

    @dbus_method()
    def RequestPinCode(self, device: "o") -> "s":
        self.asked.append("RequestPinCode")
        if self.passkey is None:
            raise DBusError(REJECTED, "the device asks for a PIN: run again with --passkey")
        return f"{self.passkey:06d}"

    @dbus_method()
    def DisplayPinCode(self, device: "o", pincode: "s"):
        self.asked.append(f"DisplayPinCode {pincode}")

    @dbus_method()
    def RequestPasskey(self, device: "o") -> "u":
        self.asked.append("RequestPasskey")
        if self.passkey is None:
            raise DBusError(REJECTED, "the device asks for a passkey: run again with --passkey")
        return self.passkey

    @dbus_method()
    def DisplayPasskey(self, device: "o", passkey: "u", entered: "q"):
        self.asked.append(f"DisplayPasskey {passkey:06d}")

    @dbus_method()
    def RequestConfirmation(self, device: "o", passkey: "u"):
        self.asked.append(f"RequestConfirmation {passkey:06d}")
        if self.passkey is not None and passkey != self.passkey:
            raise DBusError(REJECTED, f"the device shows {passkey:06d}, not {self.passkey:06d}")

    @dbus_method()
    def RequestAuthorization(self, device: "o"):
        self.asked.append("RequestAuthorization")

    @dbus_method()
    def AuthorizeService(self, device: "o", uuid: "s"):
        self.asked.append(f"AuthorizeService {uuid}")

    @dbus_method()
    def Cancel(self):
        self.asked.append("Cancel")


def device_path(adapter: str, address: str) -> str:
    return f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"


async def pair(address: str, *, adapter: str = "hci0", passkey=None, timeout: float = 60.0,
               bus_address=None) -> list:
    """Pair and trust `address`; returns what the agent was asked. Raises BleLinkError subclasses."""
    try:
        bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
    except (OSError, EOFError) as e:
        raise NoRadio(f"no Bluetooth radio is available: the system D-Bus (BlueZ) is not reachable ({e})") from e
    agent = PairingAgent(passkey)
    bus.export(AGENT_PATH, agent)
    try:
        async with asyncio.timeout(timeout):
            manager = await _interface(bus, "/org/bluez", "org.bluez.AgentManager1")
            await manager.call_register_agent(AGENT_PATH, "KeyboardDisplay" if passkey is not None
                                              else "NoInputNoOutput")
            try:
                await manager.call_request_default_agent(AGENT_PATH)
                device = await _find_device(bus, adapter, address)
                try:
                    await device.call_pair()
                except DBusError as e:
                    if e.type != "org.bluez.Error.AlreadyExists":
                        raise
                    agent.asked.append("already paired")
                await device.set_trusted(True)
            finally:
                await manager.call_unregister_agent(AGENT_PATH)
    except TimeoutError:
        raise StepTimeout(f"pairing {address} took longer than {timeout:g}s (is it in pairing mode?)") from None
    except DBusError as e:
        raise _translate(e, address) from e
    finally:
        bus.disconnect()
    return agent.asked


async def _interface(bus, path: str, name: str):
    node = await bus.introspect(BLUEZ, path)
    return bus.get_proxy_object(BLUEZ, path, node).get_interface(name)


async def _find_device(bus, adapter: str, address: str):
    """The Device1 object, discovering for it if BlueZ has not seen the device yet."""
    path = device_path(adapter, address)
    try:
        return await _interface(bus, path, "org.bluez.Device1")
    except (DBusError, Exception):
        pass
    radio = await _interface(bus, f"/org/bluez/{adapter}", "org.bluez.Adapter1")
    await radio.call_start_discovery()
    try:
        while True:
            await asyncio.sleep(0.5)
            try:
                return await _interface(bus, path, "org.bluez.Device1")
            except (DBusError, Exception):
                continue
    finally:
        try:
            await radio.call_stop_discovery()
        except DBusError:
            pass


def _translate(e: DBusError, address: str) -> BleLinkError:
    if e.type in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
        return NoRadio("no Bluetooth radio is available: BlueZ (bluetoothd) is not running")
    if e.type in ("org.bluez.Error.AuthenticationFailed", "org.bluez.Error.AuthenticationRejected",
                  "org.bluez.Error.AuthenticationCanceled", REJECTED):
        return BondLost(f"pairing {address} failed: {e.text or e.type} (wrong passkey, or not in pairing mode)")
    if e.type in ("org.bluez.Error.ConnectionAttemptFailed", "org.bluez.Error.AuthenticationTimeout",
                  "org.freedesktop.DBus.Error.UnknownObject"):
        return DeviceNotFound(f"pairing {address} failed: {e.text or e.type} (switch it to pairing mode, nearby)")
    return BleLinkError(f"pairing {address} failed: {e.type}: {e.text}")
