"""Readings from real MQTT devices, through a real mosquitto and the real ingest process."""
from __future__ import annotations

import json
import subprocess

from tests.conftest import add_device, clinic_edge, wait_for


def pub(broker, device_id, password, payload, topic=None, extra=()):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                           "-u", device_id, "-P", password, "-t", topic or f"devices/{device_id}/readings",
                           "-m", payload, *extra], capture_output=True, text=True, timeout=10)


class Device:
    """A device's one connection (the broker takes its username as its client id, so a second
    connection of the same account would replace it): publishes at QoS 1 and hears its errors topic."""

    def __init__(self, broker, device_id, password):
        import paho.mqtt.client as mqtt

        self.errors: list[str] = []
        self.device_id = device_id
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id)
        c.username_pw_set(device_id, password)
        c.on_message = lambda cl, u, m: self.errors.append(m.payload.decode())
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(f"devices/{device_id}/errors", qos=1)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        self.client = c
        wait_for(c.is_connected, message=f"device {device_id} to connect")

    def publish(self, payload: str) -> None:
        """Publish and wait for the broker's PUBACK."""
        info = self.client.publish(f"devices/{self.device_id}/readings", payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def readings(env):
    return json.loads(clinic_edge(env, "readings", "--json", "--limit", "10000").stdout)


BP = json.dumps([{"bt": 1763884800, "n": "8480-6", "u": "kPa", "v": 18.7},
                 {"n": "8462-4", "u": "mm[Hg]", "v": 88}, {"n": "pulse", "u": "beat/min", "v": 71}])


def test_published_reading_is_stored_once_in_canonical_unit(env, broker, ingest_proc):
    password = add_device(env, "bp-1", broker=broker)
    ingest_proc()
    assert pub(broker, "bp-1", password, BP).returncode == 0
    assert pub(broker, "bp-1", password, BP).returncode == 0  # the same message again
    rows = wait_for(lambda: len(readings(env)) >= 3 and readings(env), message="3 readings")
    by_code = {r["code"]: r for r in rows}
    assert len(rows) == 3
    assert by_code["8480-6"]["value"] == 140 and by_code["8480-6"]["unit"] == "mm[Hg]"  # 18.7 kPa
    assert by_code["8867-4"]["unit"] == "/min"
    assert {"id", "device_id", "code", "value", "unit", "effective_time", "resident_id", "status"} <= set(rows[0])
    assert by_code["8462-4"]["effective_time"] == "2025-11-23T08:00:00.000Z"


def test_bad_messages_are_rejected_with_a_reason_and_change_nothing(env, broker, ingest_proc):
    pw = add_device(env, "bp-1", broker=broker)
    other_pw = add_device(env, "bp-2", broker=broker)
    ingest_proc()
    device = Device(broker, "bp-1", pw)
    errors = device.errors
    try:
        bad = {
            "malformed": ('[{"n":"8480-6","v":12', "not valid UTF-8 JSON"),
            "wrong type": ('[{"n":"8480-6","u":"mm[Hg]","v":"120"}]', "'v' must be a number"),
            "unknown code": ('[{"n":"ferritin","u":"ug/L","v":5}]', "unknown code 'ferritin'"),
            "wrong unit": ('[{"n":"8310-5","u":"mmol/L","v":36.6}]', "unit 'mmol/L' is not valid"),
            "oversized": (json.dumps([{"n": "8480-6", "u": "mm[Hg]", "v": 120, "x": "a" * 5000}]), "over the limit"),
        }
        for name, (payload, _) in bad.items():
            device.publish(payload)
        wait_for(lambda: len(errors) >= len(bad), message="error replies")
        for name, (_, reason) in bad.items():
            assert any(reason in e for e in errors), f"{name}: {errors}"
        assert readings(env) == []
        # a device publishing to another device's topic is refused by the broker (MQTT 5 reason code)
        forged = pub(broker, "bp-2", other_pw, BP, topic="devices/bp-1/readings", extra=("-V", "5"))
        assert "not authorized" in (forged.stderr + forged.stdout).lower()
        # an impossible value is stored, as rejected with its reason, never as valid
        device.publish('[{"n":"2708-6","u":"%","v":140}]')
        device.publish(BP)
        rows = wait_for(lambda: len(readings(env)) >= 4 and readings(env), message="valid readings after bad ones")
        spo2 = [r for r in rows if r["code"] == "2708-6"]
        assert spo2[0]["status"] == "rejected" and "outside the possible range" in spo2[0]["reason"]
        assert all(r["device_id"] == "bp-1" for r in rows)
        assert sorted(r["status"] for r in rows) == ["rejected", "valid", "valid", "valid"]
        listed = json.loads(clinic_edge(env, "device", "list", "--json").stdout)
        assert [d for d in listed if d["id"] == "bp-1"][0]["error_count"] == len(bad)
    finally:
        device.close()
