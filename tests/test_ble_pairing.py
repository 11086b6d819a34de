"""`clinic-edge device pair`: our org.bluez.Agent1 over a real D-Bus daemon (a private bus), against a
small stand-in for bluetoothd that implements the parts of BlueZ's D-Bus API pairing uses
(AgentManager1, Adapter1.StartDiscovery, Device1.Pair/Trusted; method names and signatures from
BlueZ's doc/agent-api.txt and doc/device-api.txt). The stand-in is ours: this checks our side of
the protocol over real D-Bus, not bluetoothd itself (there is no BlueZ on this machine)."""
import asyncio
import shutil
import subprocess

import pytest
from dbus_fast import DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_method, dbus_property

from device_drivers.ble.errors import BondLost, NoRadio
from device_drivers.ble.pairing import device_path, pair

ADDRESS = "C0:26:DA:00:00:01"
pytestmark = pytest.mark.skipif(not shutil.which("dbus-daemon"), reason="dbus-daemon is not installed")


class AgentManager(ServiceInterface):
    def __init__(self, bluez):
        super().__init__("org.bluez.AgentManager1")
        self.bluez = bluez

    @dbus_method()
    def RegisterAgent(self, agent: "o", capability: "s"):
        self.bluez.agent_path, self.bluez.capability = agent, capability

    @dbus_method()
    def RequestDefaultAgent(self, agent: "o"):
        self.bluez.default = agent

    @dbus_method()
    def UnregisterAgent(self, agent: "o"):
        self.bluez.unregistered = agent


class Adapter(ServiceInterface):
    def __init__(self, bluez):
        super().__init__("org.bluez.Adapter1")
        self.bluez = bluez

    @dbus_method()
    def StartDiscovery(self):
        asyncio.get_running_loop().call_later(0.2, self.bluez.appear)

    @dbus_method()
    def StopDiscovery(self):
        pass


class Device(ServiceInterface):
    def __init__(self, bluez):
        super().__init__("org.bluez.Device1")
        self.bluez = bluez
        self._trusted = False
        self._paired = False

    @dbus_method()
    async def Pair(self):
        if self._paired:
            raise DBusError("org.bluez.Error.AlreadyExists", "Already Exists")
        question = ("RequestPasskey", "o", [self.bluez.path]) if self.bluez.passkey is not None \
            else ("RequestConfirmation", "ou", [self.bluez.path, 123456])
        reply = await self.bluez.bus.call(Message(destination=self.bluez.agent_sender, path=self.bluez.agent_path,
                                                  interface="org.bluez.Agent1", member=question[0],
                                                  signature=question[1], body=question[2]))
        if reply.message_type == MessageType.ERROR or (question[0] == "RequestPasskey"
                                                       and reply.body[0] != self.bluez.passkey):
            raise DBusError("org.bluez.Error.AuthenticationFailed", "Authentication Failed")
        self._paired = True

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> "b":
        return self._paired

    @dbus_property()
    def Trusted(self) -> "b":
        return self._trusted

    @Trusted.setter
    def Trusted(self, value: "b"):
        self._trusted = value


class StandInBluez:
    def __init__(self, passkey=None, known=True):
        self.passkey, self.known = passkey, known
        self.agent_sender = self.agent_path = self.capability = self.default = self.unregistered = None
        self.path = device_path("hci0", ADDRESS)
        self.device = None

    async def start(self, address):
        self.bus = await MessageBus(bus_address=address).connect()
        self.bus.add_message_handler(self._watch)
        self.bus.export("/org/bluez", AgentManager(self))
        self.bus.export("/org/bluez/hci0", Adapter(self))
        if self.known:
            self.appear()
        await self.bus.request_name("org.bluez")
        return self

    def appear(self):
        self.device = Device(self)
        self.bus.export(self.path, self.device)

    def _watch(self, msg):
        if msg.member == "RegisterAgent":
            self.agent_sender = msg.sender


@pytest.fixture
def bus_address():
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                            stdout=subprocess.PIPE, text=True)
    address = proc.stdout.readline().strip()
    yield address
    proc.terminate()
    proc.wait(5)


def run_pairing(address, bluez, **kwargs):
    async def go():
        await bluez.start(address)
        try:
            return await pair(ADDRESS, bus_address=address, timeout=10, **kwargs)
        finally:
            bluez.bus.disconnect()
    return asyncio.run(go())


def test_just_works_pairing_trusts_the_device(bus_address):
    bluez = StandInBluez()
    asked = run_pairing(bus_address, bluez)
    assert bluez.capability == "NoInputNoOutput" and bluez.default == bluez.agent_path
    assert asked == ["RequestConfirmation 123456"]
    assert bluez.device._paired and bluez.device._trusted
    assert bluez.unregistered == bluez.agent_path          # the agent does not outlive the command


def test_passkey_pairing_and_discovery_of_an_unseen_device(bus_address):
    bluez = StandInBluez(passkey=42, known=False)
    asked = run_pairing(bus_address, bluez, passkey=42)
    assert bluez.capability == "KeyboardDisplay" and asked == ["RequestPasskey"]
    assert bluez.device._paired and bluez.device._trusted


def test_wrong_or_missing_passkey_is_a_clear_error(bus_address):
    with pytest.raises(BondLost, match="wrong passkey"):
        run_pairing(bus_address, StandInBluez(passkey=42), passkey=41)


def test_no_bluez_on_the_bus(bus_address):
    async def go():
        return await pair(ADDRESS, bus_address=bus_address, timeout=5)
    with pytest.raises(NoRadio, match="bluetoothd"):
        asyncio.run(go())


def test_no_system_bus_here():
    with pytest.raises(NoRadio):
        asyncio.run(pair(ADDRESS, timeout=5))
