"""Group commit (docs/mqtt.md, "Group commit"): ingest gathers the messages that arrive within
`[mqtt] commit_wait_ms` of the first into one transaction and acknowledges them to the broker only
after it, a poisonous message in the group costs only itself, and a SIGKILL while a group is
gathered loses nothing the broker acknowledged. A real mosquitto, paho devices at QoS 1."""
from __future__ import annotations

import json
import signal
import sqlite3
from collections import Counter

from edge.core import config as config_mod
from edge.core.node import Node
from device_drivers.mqtt.driver import MqttDriver
from tests.conftest import add_device, stored_readings, wait_for
from tests.test_mqtt_durability import Publisher, stored_seconds
from tests.test_mqtt_ingest import Device
from tests.test_mqtt_poison import HUGE, UNSTORABLE, good

LONG_WAIT = {"CLINIC_EDGE_MQTT_COMMIT_WAIT_MS": "1000"}


def started(broker, **env) -> MqttDriver:
    """The MQTT driver in this process, once it is subscribed and has replayed the broker's journal
    (so what is published next arrives live, not through a replay)."""
    driver = MqttDriver(Node(config_mod.load(env={**broker.env, **env})))
    driver.start()
    wait_for(driver.caught_up, timeout=20, message="ingest subscribed and the journal replayed")
    return driver


def stopped(driver: MqttDriver) -> None:
    driver.stop()
    driver.join(10)
    driver.node.close()


def test_messages_arriving_within_the_wait_are_committed_in_one_transaction(env, node, broker):
    pw = add_device(env, "bp-1", broker=broker)
    driver = started(broker, **LONG_WAIT, CLINIC_EDGE_MQTT_BATCH_MAX="5")
    device = Publisher(broker, "bp-1", pw)
    try:
        for n in range(5):
            device.send(n)
        wait_for(lambda: len(stored_readings(node)) == 5, timeout=20, message="the five readings")
        wait_for(lambda: device.acked == {0, 1, 2, 3, 4}, message="the broker's PUBACKs")
        assert driver.stats["commits"] == 1 and driver.stats["messages"] == 5
        assert sorted(stored_seconds(node.data_dir)) == [0, 1, 2, 3, 4]
        assert driver.status()["mqtt_journal_caught_up"] is True
    finally:
        device.close()
        stopped(driver)


def test_a_poisonous_message_inside_a_group_costs_only_itself(env, node, broker):
    pw = add_device(env, "bp-1", broker=broker)
    driver = started(broker, **LONG_WAIT, CLINIC_EDGE_MQTT_BATCH_MAX="7")
    device = Device(broker, "bp-1", pw)
    try:
        for payload in (good(0), good(1), HUGE, good(2), UNSTORABLE, good(3), good(4)):
            device.client.publish("devices/bp-1/readings", payload, qos=1)
        wait_for(lambda: driver.stats["messages"] == 7, timeout=20, message="the seven messages handled")
        assert driver.stats["commits"] == 1
        rows = stored_readings(node)
        assert sorted(r["value"] for r in rows if r["code"] == "8480-6") == [100, 101, 102, 103, 104]
        [kept] = [r for r in rows if r["code"] == "29463-7"]     # stored, rejected, saying why
        assert kept["status"] == "rejected" and "outside the possible range" in kept["reason"]
        assert driver.stats["rejected_messages"] == 1 and driver.stats["stored"] == 6
        wait_for(lambda: device.errors, message="the error reply to the device")
        assert len(device.errors) == 1 and "too large" in device.errors[0]
    finally:
        device.close()
        stopped(driver)
    # everything was acknowledged to the broker: a new ingest is handed nothing again
    again = started(broker)
    try:
        assert again.stats["messages"] == 0 and len(stored_readings(node)) == 6
    finally:
        stopped(again)


def test_sigkill_while_a_group_waits_for_its_commit_loses_and_duplicates_nothing(env, data_dir, broker,
                                                                              ingest_proc):
    pw = add_device(env, "bp-1", broker=broker)
    broker.env.update(LONG_WAIT, CLINIC_EDGE_MQTT_BATCH_MAX="3")
    first = ingest_proc()
    device = Publisher(broker, "bp-1", pw)
    other = sqlite3.connect(data_dir / "clinic-edge.db", isolation_level=None)
    try:
        for n in range(3):      # one full group: committed, then acknowledged to the broker
            device.send(n)
        wait_for(lambda: sorted(stored_seconds(data_dir)) == [0, 1, 2], timeout=20, message="the first group")
        other.execute("BEGIN IMMEDIATE")   # the next group cannot commit: it stays unacknowledged
        for n in range(3, 7):
            device.send(n)
        wait_for(lambda: device.acked == set(range(7)), message="the broker's PUBACKs to the device")
        first.stop(signal.SIGKILL)
        other.execute("ROLLBACK")
        assert sorted(stored_seconds(data_dir)) == [0, 1, 2]
        second = ingest_proc()
        wait_for(lambda: len(stored_seconds(data_dir)) >= 7, timeout=20, message="the readings held at the kill")
        assert second.stop() == 0
        assert Counter(stored_seconds(data_dir)) == {n: 1 for n in range(7)}
        # the journal's replay (no watermark was noted before the kill) read all seven again
        status = json.loads((data_dir / "run" / "ingest.json").read_text())
        assert status["mqtt_duplicates"] + status["mqtt_journal_duplicates"] >= 7
    finally:
        other.close()
        device.close()
