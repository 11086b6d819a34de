"""`clinic-edge device scan` and `device add --transport ble --address`, as a user meets them."""
import json

from device_drivers.ble import state
from device_drivers.ble.cli import nearby
from device_drivers.ble.fake import FakeAdapter, FakePeripheral
from edge.core import devices
from tests.conftest import clinic_edge


def test_scan_without_a_radio_prints_a_clear_message_not_a_traceback(env):
    proc = clinic_edge(env, "device", "scan", "--seconds", "0.5", check=False)
    assert proc.returncode == 2
    assert "no Bluetooth radio is available" in proc.stderr and "bluetoothctl" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_add_with_address_then_bad_and_duplicate_addresses_change_nothing(env, node):
    clinic_edge(env, "device", "add", "bp1", "--transport", "ble", "--kind", "bp", "--address", "c0-26-da-00-00-02")
    assert state.registered(node.store)["C0:26:DA:00:00:02"]["id"] == "bp1"
    dup = clinic_edge(env, "device", "add", "bp2", "--transport", "ble", "--kind", "bp",
                      "--address", "C0:26:DA:00:00:02", check=False)
    bad = clinic_edge(env, "device", "add", "bp3", "--transport", "ble", "--kind", "bp", "--address", "nope",
                      check=False)
    assert dup.returncode == bad.returncode == 2
    assert "already belongs to device bp1" in dup.stderr and "six hex pairs" in bad.stderr
    assert [d["id"] for d in devices.active(node.store)] == ["bp1"]          # nothing else registered
    listed = json.loads(clinic_edge(env, "device", "list", "--json").stdout)
    assert listed[0]["ble_address"] == "C0:26:DA:00:00:02"
    assert "C0:26:DA:00:00:02" in clinic_edge(env, "device", "list").stdout


def test_scan_lists_health_devices_with_kind_and_registration(node):
    now = node.clock.now()
    devices.add(node.store, "bp1", kind="bp", transport="ble", now=now)
    state.set_address(node.store, "bp1", "C0:26:DA:00:00:02", now=now)
    adapter = FakeAdapter([
        FakePeripheral("C0:26:DA:00:00:02", ["1810"], [], name="BLESmart_0000", rssi=-70),
        FakePeripheral("C0:26:DA:00:00:03", ["1808", "1805"], [], name="meter+", rssi=-50),
        FakePeripheral("11:22:33:44:55:66", ["fe95"], [], name="a lamp", rssi=-40),
    ])
    rows = nearby(adapter, node.store, 0.01)
    assert [(r["address"], r["kind"], r["registered_as"]) for r in rows] == [
        ("C0:26:DA:00:00:03", "glucose", None), ("C0:26:DA:00:00:02", "bp", "bp1")]
    assert rows[0]["services"] == ["glucose"]
    assert len(nearby(adapter, node.store, 0.01, everything=True)) == 3
    json.dumps(rows)


def test_pair_without_a_radio_or_with_an_unknown_device_says_what_is_wrong(env):
    clinic_edge(env, "device", "add", "bp1", "--transport", "ble", "--kind", "bp", "--address", "C0:26:DA:00:00:02")
    no_radio = clinic_edge(env, "device", "pair", "bp1", "--seconds", "2", check=False)
    unknown = clinic_edge(env, "device", "pair", "nope", check=False)
    assert no_radio.returncode == unknown.returncode == 2
    assert "no Bluetooth radio is available" in no_radio.stderr
    assert "neither a registered Bluetooth device" in unknown.stderr
    assert "Traceback" not in no_radio.stderr + unknown.stderr
