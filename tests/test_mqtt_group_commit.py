"""Group commit (docs/mqtt.md, "Group commit"): while messages arrive closer together than
`[mqtt] commit_wait_ms`, ingest gathers them into one transaction; a message arriving on its own is
committed at once (device_drivers/mqtt/grouping.py, tested on a timeline passed in: no time passes).
Each message is acknowledged to the broker only after its commit, a poisonous message in a group
costs only itself, and a SIGKILL while a group is gathered loses nothing the broker acknowledged
(a real mosquitto, paho devices at QoS 1)."""
from __future__ import annotations

import json
import queue
import signal
import sqlite3
from collections import Counter, deque
from dataclasses import dataclass
from fractions import Fraction

from edge.core import config as config_mod
from edge.core.node import Node
from device_drivers.mqtt.driver import MqttDriver
from device_drivers.mqtt.grouping import Gatherer
from tests.conftest import add_device, stored_readings, wait_for
from tests.test_mqtt_durability import Publisher, stored_seconds
from tests.test_mqtt_ingest import Device
from tests.test_mqtt_poison import HUGE, UNSTORABLE, good

LONG_WAIT = {"CLINIC_EDGE_MQTT_COMMIT_WAIT_MS": "1000"}


WAIT = Fraction(1, 10)       # [mqtt] commit_wait_ms = 100
COMMIT = Fraction(1, 100)    # how long one commit takes on this timeline


@dataclass
class Message:
    n: int
    arrived: Fraction


class Timeline:
    """The writer's queue with messages that enter it at set times, and the clock they are measured
    on: a get() that would block moves the clock instead (exact fractions of a second)."""

    def __init__(self, arrivals):
        self.now = Fraction(0)
        self.future = deque(Message(n, Fraction(t)) for n, t in enumerate(arrivals))

    def clock(self) -> Fraction:
        return self.now

    def get(self, timeout: float):
        if self.future and self.future[0].arrived <= self.now + Fraction(timeout):
            self.now = max(self.now, self.future[0].arrived)
            return self.future.popleft()
        self.now += Fraction(timeout)
        raise queue.Empty

    def get_nowait(self):
        return self.get(0)


def committed(arrivals, *, batch_max: int = 50) -> list[list[tuple[int, Fraction]]]:
    """Run the writer over the timeline: each commit's messages as (number, publish -> commit)."""
    line = Timeline(arrivals)
    gatherer = Gatherer(line, wait_s=WAIT, batch_max=batch_max, clock=line.clock)
    commits = []
    while line.future:
        batch = gatherer.take()
        if batch:
            line.now += COMMIT
            commits.append([(m.n, line.now - m.arrived) for m in batch])
    return commits


def test_a_reading_a_second_is_committed_at_once_instead_of_waiting_for_others():
    commits = committed([Fraction(n) for n in range(10)])
    assert [[n for n, _ in c] for c in commits] == [[n] for n in range(10)]
    assert {latency for c in commits for _, latency in c} == {COMMIT}      # no wait at all


def test_readings_twenty_a_second_are_gathered_within_the_wait():
    commits = committed([Fraction(n, 20) for n in range(40)])
    # the first has no one before it: at once; then each commit gathers what comes within the
    # wait of its first message, so every message is committed within the wait plus one commit
    assert [len(c) for c in commits] == [1] + [3] * 13
    assert max(latency for c in commits for _, latency in c) == WAIT + COMMIT
    assert sorted(n for c in commits for n, _ in c) == list(range(40))


def test_when_the_readings_thin_out_the_next_one_is_committed_at_once():
    commits = committed([Fraction(n, 20) for n in range(20)] + [Fraction(5), Fraction(7)])
    assert commits[-2:] == [[(20, COMMIT)], [(21, COMMIT)]]


def test_a_meter_uploading_its_memory_is_committed_in_full_groups_without_waiting():
    commits = committed([0] * 30, batch_max=10)
    assert [[n for n, _ in c] for c in commits] == [list(range(10)), list(range(10, 20)), list(range(20, 30))]
    assert [max(latency for _, latency in c) for c in commits] == [COMMIT, 2 * COMMIT, 3 * COMMIT]


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


def test_a_message_on_its_own_is_committed_at_once_and_the_ones_close_behind_it_together(env, node, broker):
    pw = add_device(env, "bp-1", broker=broker)
    driver = started(broker, **LONG_WAIT, CLINIC_EDGE_MQTT_BATCH_MAX="5")
    device = Publisher(broker, "bp-1", pw)
    try:
        device.send(0)     # nothing came before it: committed at once, not held for the 1 s wait
        wait_for(lambda: len(stored_readings(node)) == 1, timeout=20, message="the first reading")
        # the writer counts a commit once it has acknowledged its messages, a moment after the row is seen
        wait_for(lambda: driver.stats["commits"] >= 1, timeout=10, message="the first commit counted")
        assert driver.stats["commits"] == 1 and driver.stats["messages"] == 1
        for n in range(1, 6):     # close behind it: gathered into one transaction
            device.send(n)
        wait_for(lambda: len(stored_readings(node)) == 6, timeout=20, message="the six readings")
        wait_for(lambda: device.acked == set(range(6)), message="the broker's PUBACKs")
        wait_for(lambda: driver.stats["commits"] >= 2, timeout=10, message="the second commit counted")
        assert driver.stats["commits"] == 2 and driver.stats["messages"] == 6
        assert sorted(stored_seconds(node.data_dir)) == list(range(6))
        assert driver.status()["mqtt_journal_caught_up"] is True
    finally:
        device.close()
        stopped(driver)


def test_a_poisonous_message_inside_a_group_costs_only_itself(env, node, broker):
    pw = add_device(env, "bp-1", broker=broker)
    driver = started(broker, **LONG_WAIT, CLINIC_EDGE_MQTT_BATCH_MAX="7")
    device = Device(broker, "bp-1", pw)
    try:
        device.client.publish("devices/bp-1/readings", good(5), qos=1)   # alone: committed at once
        wait_for(lambda: driver.stats["messages"] == 1, timeout=20, message="the first message handled")
        for payload in (good(0), good(1), HUGE, good(2), UNSTORABLE, good(3), good(4)):
            device.client.publish("devices/bp-1/readings", payload, qos=1)
        wait_for(lambda: driver.stats["messages"] == 8 and driver.stats["commits"] >= 2, timeout=20,
                 message="the seven messages handled")
        assert driver.stats["commits"] == 2
        rows = stored_readings(node)
        assert sorted(r["value"] for r in rows if r["code"] == "8480-6") == [100, 101, 102, 103, 104, 105]
        [kept] = [r for r in rows if r["code"] == "29463-7"]     # stored, rejected, saying why
        assert kept["status"] == "rejected" and "outside the possible range" in kept["reason"]
        assert driver.stats["rejected_messages"] == 1 and driver.stats["stored"] == 7
        wait_for(lambda: device.errors, message="the error reply to the device")
        assert len(device.errors) == 1 and "too large" in device.errors[0]
    finally:
        device.close()
        stopped(driver)
    # everything was acknowledged to the broker: a new ingest is handed nothing again
    again = started(broker)
    try:
        assert again.stats["messages"] == 0 and len(stored_readings(node)) == 7
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
