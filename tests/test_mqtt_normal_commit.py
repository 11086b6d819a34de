"""Journaled readings are committed without an fsync each (docs/mqtt.md, "What a reading writes"):
the MQTT writer commits a batch of messages the broker journaled with synchronous=NORMAL, since a
power cut may undo such a commit only while the broker's journal still holds its records; the
journal's watermark, which lets the broker delete them, moves only after `Store.make_durable()`
has put every commit it covers on disk. A message the broker did not journal (QoS 0) is committed
with FULL, as every other writer of the store commits. A real mosquitto with its journal, the
driver in this process, paho devices."""
from __future__ import annotations

from device_drivers.mqtt import driver as driver_mod, journal
from edge.core import config as config_mod
from edge.core.node import Node
from edge.core.store import Store
from device_drivers.mqtt.driver import MqttDriver
from tests.conftest import add_device, stored_readings, wait_for
from tests.test_mqtt_durability import Publisher, stored_seconds
from tests.test_mqtt_group_commit import stopped

NORMAL, FULL = 1, 2


def test_the_watermark_never_passes_a_commit_that_is_not_on_disk(env, node, broker, monkeypatch):
    monkeypatch.setattr(driver_mod, "WATERMARK_EVERY", 3)
    durable: list[int] = []          # readings stored when each make_durable() returned
    marks: list[tuple[int, int]] = []  # (watermark seq, readings made durable before it was written)
    real_durable, real_mark = Store.make_durable, journal.commit_watermark

    def make_durable(self):
        real_durable(self)
        durable.append(self.scalar("SELECT count(*) FROM readings"))

    def commit_watermark(d, epoch, seq):
        marks.append((seq, durable[-1] if durable else 0))
        real_mark(d, epoch, seq)
    monkeypatch.setattr(Store, "make_durable", make_durable)
    monkeypatch.setattr(journal, "commit_watermark", commit_watermark)
    stores: list[Store] = []
    cfg = Node(config_mod.load(env=broker.env))
    pw = add_device(env, "bp-1", broker=broker)
    drv = MqttDriver(cfg, store_factory=lambda: stores.append(Store(cfg.config.store_path)) or stores[-1])
    drv.start()
    wait_for(drv.caught_up, timeout=20, message="ingest subscribed and the journal replayed")
    device = Publisher(broker, "bp-1", pw)
    try:
        for n in range(10):
            device.send(n)
        wait_for(lambda: len(stored_readings(node)) == 10, timeout=20, message="the ten readings")
        wait_for(lambda: device.acked == set(range(10)), message="the broker's PUBACKs")
        # committed without an fsync each: what a power cut could undo is still in the journal
        assert stores[0].conn.execute("PRAGMA synchronous").fetchone()[0] == NORMAL
        wait_for(lambda: marks and marks[-1][0] >= 9, timeout=20, message="the watermark over nine records")
        assert all(seq <= on_disk for seq, on_disk in marks), marks   # one reading per record, seq from 1
        device.client.publish("devices/bp-1/readings", '[{"bt": 1763884900, "n": "8480-6", "u": "mm[Hg]", '
                              '"v": 120}]', qos=0)   # not journaled: nothing else holds it
        wait_for(lambda: len(stored_readings(node)) == 11, timeout=20, message="the QoS 0 reading")
        assert stores[0].conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
    finally:
        device.close()
        stopped(drv)
    assert sorted(stored_seconds(node.data_dir)) == list(range(10)) + [100]
    seq = journal.watermark(journal.journal_dir(node.data_dir))[1]
    assert seq == 10
