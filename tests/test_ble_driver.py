"""`[drivers.ble]` enables the BLE driver in `clinic-edge ingest`; it runs its asyncio loop in its
own thread and stores what a (replayed) device sends."""
import time

import pytest

from device_drivers import runner
from device_drivers.ble import state
from device_drivers.ble.driver import BleDriver
from device_drivers.ble.fake import FakeAdapter, FakePeripheral
from device_drivers.errors import DriverError
from edge.core import config as config_mod, devices
from edge.core.node import Node

from tests.conftest import wait_for

BP_SOME = "15bdf00b009ff03c001200"   # Nordic BloodPressureMeasurementDataCallbackTest _some
FAST = {"scan_seconds": 0.01, "pause_seconds": 0.05, "measurement_wait": 0.5, "idle_seconds": 0.05,
        "step_timeout": 0.5, "connect_timeout": 0.5, "session_timeout": 3}


def node_with(tmp_path, env, text):
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    return Node(config_mod.load(cfg, env={**env, "CLINIC_EDGE_MQTT_ENABLED": "false"}))


def test_drivers_ble_section_enables_the_driver(tmp_path, env):
    node = node_with(tmp_path, env, "[drivers.ble]\nscan_seconds = 4\n")
    (driver,) = runner.build(node)
    assert isinstance(driver, BleDriver) and driver.settings.scan_seconds == 4
    node.close()


@pytest.mark.parametrize("text,message", [
    ("[drivers.ble]\nscan_secs = 4\n", "unknown key drivers.ble.scan_secs"),
    ("[drivers.ble]\nstep_timeout = -1\n", "drivers.ble.step_timeout"),
    ("[drivers.ble]\nwrite_time = 'maybe'\n", "true or false"),
])
def test_bad_ble_config_is_one_clear_line(tmp_path, env, text, message):
    node = node_with(tmp_path, env, text)
    with pytest.raises(DriverError, match=message):
        runner.build(node)
    node.close()


def test_driver_thread_stores_readings_and_reports_status(tmp_path, env):
    node = node_with(tmp_path, env, "")
    now = node.clock.now()
    devices.add(node.store, "bp1", kind="bp", transport="ble", now=now)
    state.set_address(node.store, "bp1", "C0:26:DA:00:00:02", now=now)
    monitor = FakePeripheral("C0:26:DA:00:00:02", ["1810"], ["2a35"],
                             [[{"notify": "2a35", "data": BP_SOME}]], "BPM")
    driver = BleDriver(node, FAST, adapter_factory=lambda: FakeAdapter([monitor]))
    driver.start()
    try:
        wait_for(lambda: node.store.scalar("SELECT count(*) FROM readings WHERE device_id='bp1'") == 3,
                 timeout=10, message="BP readings stored")
        wait_for(driver.healthy, timeout=5, message="driver healthy")
        wait_for(lambda: driver.status()["ble_devices"]["bp1"]["last_reading"], timeout=5, message="status")
        assert driver.status()["ble_radio"] is True
    finally:
        driver.stop()
        driver.join(5)
    assert not driver._thread.is_alive()
    node.close()


def test_no_radio_is_reported_not_fatal(tmp_path, env):
    node = node_with(tmp_path, env, "")
    now = node.clock.now()
    devices.add(node.store, "bp1", kind="bp", transport="ble", now=now)
    state.set_address(node.store, "bp1", "C0:26:DA:00:00:02", now=now)
    driver = BleDriver(node, FAST, adapter_factory=lambda: FakeAdapter(radio=False))
    driver.start()
    try:
        wait_for(lambda: driver.status().get("ble_radio") is False, timeout=5, message="radio reported missing")
        assert "no Bluetooth adapter" in driver.status()["ble_radio_error"]
        assert driver.healthy()          # the loop runs; MQTT/serial keep working; no watchdog restart
    finally:
        driver.stop()
        t0 = time.monotonic()
        driver.join(5)
        assert time.monotonic() - t0 < 5
    node.close()


def test_clinic_edge_ingest_with_ble_on_a_machine_without_radio(tmp_path, env):
    """The real `clinic-edge ingest` process: the BLE driver reports the missing radio in the status
    file, keeps running, and stops cleanly on SIGTERM."""
    import json
    from pathlib import Path

    from tests.conftest import Ingest, clinic_edge

    cfg = tmp_path / "config.toml"
    cfg.write_text("[drivers.ble]\nscan_seconds = 0.5\npause_seconds = 0.5\nbackoff_base = 0.2\nbackoff_cap = 1\n")
    e = {**env, "CLINIC_EDGE_CONFIG": str(cfg), "CLINIC_EDGE_MQTT_ENABLED": "false"}
    clinic_edge(e, "device", "add", "bp1", "--transport", "ble", "--kind", "bp", "--address", "C0:26:DA:00:00:02")
    ingest = Ingest(e).start()
    status = Path(e["CLINIC_EDGE_DATA"]) / "run" / "ingest.json"

    def reported():
        try:
            s = json.loads(status.read_text())
        except (OSError, ValueError):
            return None
        return s if s.get("ble_radio") is False else None

    try:
        s = wait_for(reported, timeout=20, message="ingest to report the missing radio")
        assert "no Bluetooth radio" in s["ble_radio_error"] and s["drivers"]["ble"] is True
    finally:
        rc = ingest.stop()
    assert rc == 0 and "Traceback" not in ingest.output()


def test_every_ble_setting_is_documented_for_county_it():
    from dataclasses import fields
    from pathlib import Path

    from device_drivers.ble.settings import BleSettings

    doc = (Path(__file__).resolve().parents[1] / "docs" / "ble.md").read_text()
    missing = [f.name for f in fields(BleSettings) if f.name not in doc]
    assert not missing, f"docs/ble.md does not mention {missing}"
