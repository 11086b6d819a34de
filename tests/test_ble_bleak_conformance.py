"""The bleak adapter against the installed bleak: the calls it makes exist with compatible
signatures, bleak's exceptions map to ours, and a whole glucose download runs through the real
`BleakClient` with a replaying backend plugged into bleak's own `backend=` hook (docs/devices.md, real devices and BlueZ),
so the fake adapter and the real one cannot drift apart unnoticed."""
import asyncio
import inspect
from datetime import timezone

import pytest

pytest.importorskip("bleak")
from bleak import BleakClient, BleakScanner                          # noqa: E402
from bleak.backends.characteristic import BleakGATTCharacteristic   # noqa: E402
from bleak.backends.client import BaseBleakClient                   # noqa: E402
from bleak.backends.device import BLEDevice                         # noqa: E402
from bleak.backends.scanner import AdvertisementData                # noqa: E402
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection   # noqa: E402
from bleak.exc import BleakDBusError, BleakDeviceNotFoundError, BleakError          # noqa: E402

from device_drivers.ble import state                                 # noqa: E402
from device_drivers.ble.adapter import Advertisement                 # noqa: E402
from device_drivers.ble.bleak_adapter import BleakAdapter, translate  # noqa: E402
from device_drivers.ble.connections import BleConnections            # noqa: E402
from device_drivers.ble.errors import BondLost, DeviceNotFound, LinkLost, NoRadio   # noqa: E402
from device_drivers.ble.gatt import uuid16                           # noqa: E402
from device_drivers.ble.settings import BleSettings                  # noqa: E402
from edge.core import devices                                        # noqa: E402
from edge.core.clock import SystemClock                              # noqa: E402
from edge.core.store import Store                                    # noqa: E402


def accepts(fn, *args, **kwargs):
    inspect.signature(fn).bind(*args, **kwargs)     # raises TypeError when the call would not fit


def test_the_calls_the_adapter_makes_fit_the_installed_bleak():
    accepts(BleakScanner.discover, timeout=8.0, return_adv=True, adapter="hci0")
    accepts(BleakClient.__init__, None, "AA:BB:CC:DD:EE:FF", disconnected_callback=lambda c: None, timeout=5.0,
            backend=None, adapter="hci0")
    accepts(BleakClient.connect, None)
    accepts(BleakClient.start_notify, None, "00002a35-0000-1000-8000-00805f9b34fb", lambda ch, data: None)
    accepts(BleakClient.write_gatt_char, None, "00002a52-0000-1000-8000-00805f9b34fb", b"\x01\x01", response=True)
    accepts(BleakClient.disconnect, None)
    assert isinstance(inspect.getattr_static(BleakClient, "services"), property)
    assert {"local_name", "rssi", "service_uuids"} <= set(AdvertisementData._fields)
    assert "address" in inspect.signature(BLEDevice.__init__).parameters
    assert inspect.iscoroutinefunction(BleakScanner.discover) and inspect.iscoroutinefunction(BleakClient.connect)


@pytest.mark.parametrize("error,ours", [
    (BleakDBusError("org.bluez.Error.AuthenticationFailed", []), BondLost),
    (BleakDBusError("org.bluez.Error.NotPermitted", ["Insufficient Authentication"]), BondLost),
    (BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", []), NoRadio),
    (BleakDeviceNotFoundError("AA:BB:CC:DD:EE:FF"), DeviceNotFound),
    (FileNotFoundError(2, "No such file or directory"), NoRadio),     # no system bus: this machine
    (BleakError("Not connected"), LinkLost),
    (EOFError(), LinkLost),
])
def test_bleak_errors_become_ours(error, ours):
    assert isinstance(translate(error, "step"), ours)


def test_scanning_on_a_machine_without_radio_says_so():
    with pytest.raises(NoRadio, match="no Bluetooth radio"):
        asyncio.run(BleakAdapter().scan(0.5))


# -- a whole session through BleakClient ----------------------------------------------------------
RECORDS = ["0301" + "00e907030f080100" + "0000" + "5fb011", "0302" + "00e907030f080200" + "0000" + "5fb011"]


class ReplayBackend(BaseBleakClient):
    """A bleak backend that behaves like a glucose meter: answers `01 01` with two records."""
    writes: list = []

    def __init__(self, address_or_ble_device, **kwargs):
        super().__init__(address_or_ble_device, **kwargs)
        self._connected, self._callbacks = False, {}

    @property
    def name(self):
        return "replay"

    @property
    def mtu_size(self):
        return 23

    async def connect(self, pair=False, **kwargs):
        collection = BleakGATTServiceCollection()
        service = BleakGATTService(None, 1, uuid16("1808"))
        collection.add_service(service)
        for handle, short in enumerate(("2a18", "2a34", "2a52", "2a2b"), start=2):
            char = BleakGATTCharacteristic(None, handle, uuid16(short), ["notify", "write", "indicate"],
                                           lambda: 20, service)
            collection.add_characteristic(char)     # also adds it to its service
        self.services, self._connected = collection, True

    async def disconnect(self):
        self._connected = False

    async def pair(self, *args, **kwargs):
        raise NotImplementedError

    async def unpair(self):
        raise NotImplementedError

    @property
    def is_connected(self):
        return self._connected

    async def read_gatt_char(self, characteristic, **kwargs):
        raise NotImplementedError

    async def read_gatt_descriptor(self, handle, **kwargs):
        raise NotImplementedError

    async def write_gatt_char(self, characteristic, data, response):
        ReplayBackend.writes.append((characteristic.uuid[4:8], bytes(data).hex(), response))
        if characteristic.uuid == uuid16("2a52") and bytes(data) == b"\x01\x01":
            loop = asyncio.get_running_loop()
            for record in RECORDS:
                loop.call_soon(self._callbacks[uuid16("2a18")], bytearray.fromhex(record))
            loop.call_soon(self._callbacks[uuid16("2a52")], bytearray.fromhex("06000101"))

    async def write_gatt_descriptor(self, handle, data):
        raise NotImplementedError

    async def start_notify(self, characteristic, callback, **kwargs):
        self._callbacks[characteristic.uuid] = callback

    async def stop_notify(self, characteristic):
        self._callbacks.pop(characteristic.uuid, None)


class ReplayRadio(BleakAdapter):
    async def scan(self, seconds):
        return [Advertisement("C0:26:DA:00:00:01", "Meter", -50, ("1808",))]


def test_a_glucose_download_through_the_real_bleak_client(tmp_path):
    store = Store(tmp_path / "node.db")
    devices.add(store, "meter1", kind="glucose", transport="ble", now=SystemClock().now())
    state.set_address(store, "meter1", "c0:26:da:00:00:01", now=SystemClock().now())
    settings = BleSettings(scan_seconds=0.01, step_timeout=1, measurement_wait=1, connect_timeout=1,
                           session_timeout=5)
    conn = BleConnections(store, ReplayRadio(client_backend=ReplayBackend), settings=settings,
                          clock=SystemClock(), tz=timezone.utc)
    asyncio.run(conn.round())
    assert conn.devices["meter1"].last_error is None, conn.devices["meter1"].last_error
    assert store.scalar("SELECT count(*) FROM readings WHERE code = '2339-0' AND status = 'valid'") == 2
    assert state.last_sequence(store, "meter1") == 2
    assert [w[0] for w in ReplayBackend.writes] == ["2a2b", "2a52"]
    store.close()
