"""One bad MQTT message never stops ingest; what makes two messages the same; a device cannot take
ingest's client id. All against a real mosquitto and the real `clinic-edge ingest` process."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.core import config as config_mod
from edge.core.node import Node
from device_drivers.mqtt.driver import MqttDriver
from tests.conftest import add_device, clinic_edge, stored_readings, wait_for
from tests.test_mqtt_ingest import Device, pub, readings

HUGE = '[{"n":"8480-6","u":"mm[Hg]","v":1' + "0" * 400 + "}]"
# an int too large for SQLite's integers (bv 0 keeps the value an int): it must not fail the commit
UNSTORABLE = '[{"bv":0,"n":"29463-7","u":"kg","v":1' + "0" * 30 + "}]"
WEIGHT = '[{"n":"29463-7","u":"kg","v":70.0}]'   # no time: the scale does not know the time


def good(n: int) -> str:
    return json.dumps([{"bt": 1763884800 + n, "n": "8480-6", "u": "mm[Hg]", "v": 100 + n}])


def ingest_status(env) -> dict:
    return json.loads((Path(env["CLINIC_EDGE_DATA"]) / "run" / "ingest.json").read_text())


def test_a_poisonous_message_is_refused_and_the_good_ones_after_it_are_stored(env, broker, ingest_proc):
    pw = add_device(env, "bp-1", broker=broker)
    first = ingest_proc()
    watch = Device(broker, "bp-1", pw)
    try:
        for payload in (HUGE, UNSTORABLE, *(good(n) for n in range(5))):
            watch.publish(payload)
        rows = wait_for(lambda: len([r for r in readings(env) if r["code"] == "8480-6"]) >= 5 and readings(env),
                        timeout=20, message="the good readings after the bad ones")
        assert sorted(r["value"] for r in rows if r["code"] == "8480-6") == [100, 101, 102, 103, 104]
        # the huge number: refused with its reason, sent back to the device and shown in `device list`
        wait_for(lambda: watch.errors, message="an error reply")
        assert not [r for r in rows if r["status"] == "valid" and r["code"] == "29463-7"]
        assert len(watch.errors) == 1 and "too large" in watch.errors[0], watch.errors
        # the integer too large for SQLite: kept as a rejected reading, saying why
        [kept] = [r for r in rows if r["code"] == "29463-7"]
        assert kept["status"] == "rejected" and "outside the possible range" in kept["reason"]
        listed = json.loads(clinic_edge(env, "device", "list", "--json").stdout)
        bp = [d for d in listed if d["id"] == "bp-1"][0]
        assert bp["error_count"] == len(watch.errors) and bp["last_error"]
        assert ingest_status(env)["drivers"]["mqtt"] is True
        # everything was acknowledged: a new ingest gets nothing again (only the next message)
        assert first.stop() == 0
        final = ingest_status(env)
        assert "mqtt_crashed" not in final and final["mqtt_messages"] == 7
        second = ingest_proc()
        watch.publish(good(5))
        wait_for(lambda: len(readings(env)) == len(rows) + 1, message="the next reading")
        assert second.stop() == 0
        assert ingest_status(env)["mqtt_messages"] == 1, "a message was delivered again"
    finally:
        watch.close()


def test_the_same_weight_measured_twice_is_two_readings(env, broker, ingest_proc):
    pw = add_device(env, "scale-1", kind="scale", broker=broker)
    ingest_proc()
    assert pub(broker, "scale-1", pw, WEIGHT).returncode == 0
    wait_for(lambda: len(readings(env)) == 1, message="the first weight")
    assert pub(broker, "scale-1", pw, WEIGHT).returncode == 0
    rows = wait_for(lambda: len(readings(env)) == 2 and readings(env), message="the second weight")
    assert [r["value"] for r in rows] == [70.0, 70.0] and rows[0]["id"] != rows[1]["id"]


class NoAckDriver(MqttDriver):
    """Ingest that dies after its commit and before its PUBACK (the fault injected: the ack)."""

    def _acknowledge(self, item) -> None:
        self.unacked = getattr(self, "unacked", 0) + 1


def test_a_redelivered_message_is_stored_once(env, node, broker, ingest_proc):
    pw = add_device(env, "scale-1", kind="scale", broker=broker)
    dying = Node(config_mod.load(env=broker.env))
    driver = NoAckDriver(dying)
    driver.start()
    try:
        wait_for(driver.healthy, message="the in-process driver to connect")
        assert pub(broker, "scale-1", pw, WEIGHT).returncode == 0
        wait_for(lambda: len(stored_readings(node)) == 1 and getattr(driver, "unacked", 0) == 1,
                 message="committed, not acknowledged")
    finally:
        driver.stop()
        driver.join(10)
        dying.close()
    # the broker delivers it again (same packet id, DUP set) to the real ingest process
    again = ingest_proc()
    assert pub(broker, "scale-1", pw, good(1)).returncode == 0
    wait_for(lambda: len(stored_readings(node)) == 2, message="the marker after the redelivery")
    assert again.stop() == 0
    status = ingest_status(env)
    assert status["mqtt_messages"] == 2 and status["mqtt_duplicates"] == 1
    assert sorted(r["code"] for r in stored_readings(node)) == ["29463-7", "8480-6"]


def test_a_device_using_ingests_client_id_does_not_knock_ingest_off(env, node, broker, ingest_proc):
    pw = add_device(env, "bp-1", broker=broker)
    ingest = ingest_proc()
    acked: set[int] = set()
    impostor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=node.config["mqtt"]["client_id"])
    impostor.username_pw_set("bp-1", pw)
    impostor.on_publish = lambda c, u, mid, rc, p: acked.add(mid)
    impostor.connect("127.0.0.1", broker.port)
    impostor.loop_start()
    try:
        wait_for(impostor.is_connected, message="the device to connect")
        for n in range(20):
            impostor.publish("devices/bp-1/readings", good(n), qos=1)
        wait_for(lambda: len(acked) == 20, message="the broker's PUBACKs")
        wait_for(lambda: len(stored_readings(node)) == 20, timeout=20, message="all 20 readings stored")
        assert "lost the broker" not in ingest.output()
        assert ingest.stop(signal.SIGTERM) == 0
    finally:
        impostor.loop_stop()
        impostor.disconnect()


def test_a_writer_thread_that_dies_makes_the_driver_unhealthy(env, node, broker):
    def broken_store():
        raise RuntimeError("a bug in the writer")

    driver = MqttDriver(Node(config_mod.load(env=broker.env)), store_factory=broken_store)
    driver.start()
    try:
        wait_for(lambda: driver.status()["mqtt_connected"], message="connected to the broker")
        wait_for(lambda: "mqtt_crashed" in driver.status(), message="the writer to die")
        assert not driver.healthy()   # so ingest stops feeding the watchdog and systemd restarts it
        assert "a bug in the writer" in driver.status()["mqtt_crashed"]
    finally:
        driver.stop()
        driver.join(10)
        driver.node.close()


def test_a_flood_while_the_writer_is_stuck_waits_in_the_broker_not_in_ingests_memory(env, node, broker):
    import sqlite3
    import threading
    import time

    from tests.test_mqtt_durability import Publisher

    pw = add_device(env, "bp-1", broker=broker)
    ingest_node = Node(config_mod.load(env={**broker.env, "CLINIC_EDGE_MQTT_BATCH_MAX": "10"}))
    driver = MqttDriver(ingest_node)
    driver.start()
    other = sqlite3.connect(node.config.store_path, isolation_level=None)
    flood = Publisher(broker, "bp-1", pw)
    try:
        wait_for(driver.healthy, message="ingest connected")
        other.execute("BEGIN IMMEDIATE")   # the writer cannot commit: it waits and retries
        peak, done = [0], threading.Event()

        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], driver._queue.qsize())
                time.sleep(0.001)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for n in range(600):
            flood.send(n)
        wait_for(lambda: driver.stats["writer_behind"] > 0, timeout=20, message="the network thread to wait")
        other.execute("ROLLBACK")
        wait_for(lambda: len(stored_readings(node)) == 600, timeout=60, message="the whole flood stored")
        done.set()
        watcher.join()
        assert peak[0] <= 20   # 2 x batch_max, while 600 readings were waiting
    finally:
        flood.close()
        other.close()
        driver.stop()
        driver.join(10)
        ingest_node.close()
