"""Durable before acknowledged: SIGKILL of ingest and a broker restart lose nothing, duplicate nothing."""
from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.conftest import add_device, wait_for


class Publisher:
    """A device: paho at QoS 1, counting which readings the broker acknowledged (PUBACK)."""

    def __init__(self, broker, device_id, password):
        self.acked_mids: set[int] = set()   # filled by paho's network thread
        self.mid_to_n: dict[int, int] = {}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{device_id}")
        c.username_pw_set(device_id, password)
        c.max_inflight_messages_set(20)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.1, 1)
        c.on_publish = self._on_publish
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        self.client, self.device_id = c, device_id

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.acked_mids.add(mid)

    @property
    def acked(self) -> set[int]:
        return {self.mid_to_n[m] for m in list(self.acked_mids) if m in self.mid_to_n}

    def send(self, n: int) -> None:
        payload = json.dumps([{"bt": 1763884800 + n, "n": "8480-6", "u": "mm[Hg]", "v": 100 + n % 80}])
        info = self.client.publish(f"devices/{self.device_id}/readings", payload, qos=1)
        self.mid_to_n[info.mid] = n

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def stored_seconds(data_dir: Path) -> list[int]:
    db = sqlite3.connect(data_dir / "clinic-edge.db")
    try:
        rows = db.execute("SELECT device_time FROM readings").fetchall()
    finally:
        db.close()
    from datetime import datetime
    return [int(datetime.fromisoformat(r[0].replace("Z", "+00:00")).timestamp()) - 1763884800 for r in rows]


def integrity(data_dir: Path) -> str:
    db = sqlite3.connect(data_dir / "clinic-edge.db")
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def test_sigkill_of_ingest_loses_and_duplicates_nothing(env, data_dir, broker, ingest_proc):
    password = add_device(env, "bp-1", broker=broker)
    first = ingest_proc()
    pub = Publisher(broker, "bp-1", password)
    try:
        total = 2000
        for n in range(total):
            pub.send(n)
            if n == 700:  # kill in the middle of the stream, while batches are being committed
                wait_for(lambda: len(stored_seconds(data_dir)) > 100, message="ingest to be busy")
                first.stop(signal.SIGKILL)
            if n == 1300:
                ingest_proc(wait=False)
            if n % 50 == 0:
                time.sleep(0.01)
        wait_for(lambda: len(pub.acked) == total, timeout=30, message="broker PUBACKs")
        # a last reading as a fence: the broker hands the new ingest its session's messages in
        # order, so once the fence is stored any late redelivery of an earlier one has arrived too
        pub.send(total)
        wait_for(lambda: total in stored_seconds(data_dir), timeout=30, message="the fence reading stored")
        seconds = stored_seconds(data_dir)
        assert len(seconds) == len(set(seconds)), "a reading was stored twice"
        assert pub.acked <= set(seconds), f"lost {len(pub.acked - set(seconds))} acknowledged readings"
        assert sorted(seconds) == list(range(total + 1))
        assert integrity(data_dir) == "ok"
    finally:
        pub.close()


def test_broker_restart_mid_stream_loses_nothing(env, data_dir, broker, ingest_proc):
    password = add_device(env, "bp-1", broker=broker)
    ingest = ingest_proc()
    pub = Publisher(broker, "bp-1", password)
    try:
        for n in range(300):
            pub.send(n)
            if n == 150:
                broker.restart()
            time.sleep(0.002)
        wait_for(lambda: len(pub.acked) == 300, timeout=30, message="every reading acknowledged by the broker")
        try:
            wait_for(lambda: len(stored_seconds(data_dir)) >= 300, timeout=60, message="every reading stored")
        finally:
            missing = sorted(set(range(300)) - set(stored_seconds(data_dir)))
            print("missing:", missing[:50], len(missing))
            print(ingest.output()[-3000:])
            print((data_dir / "broker.log").read_text()[-3000:])
        assert sorted(stored_seconds(data_dir)) == list(range(300))
        assert "lost the broker" in ingest.output()
    finally:
        pub.close()
