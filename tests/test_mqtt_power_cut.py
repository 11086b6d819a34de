"""A power cut loses nothing a device was told is stored: every node process (broker and ingest)
is SIGKILLed at once while a device keeps publishing, in some rounds after ingest had already
been down for a while (so the broker alone held the messages). The device publishes at QoS 1 with
paho and counts its PUBACKs; every acknowledged reading must be stored, none twice.

The broker journals (and fdatasyncs) each reading before its PUBACK and ingest replays what the
broker lost (docs/mqtt.md, "The broker's journal"). Before that, mosquitto PUBACKed on receipt and
saved its database afterwards: a kill in between lost the readings just acknowledged, and the
window grew with the queue it rewrote while ingest was down."""
from __future__ import annotations

import os
import signal
import threading
import time

from tests.conftest import add_device, wait_for, wait_port
from tests.test_mqtt_durability import Publisher, integrity, stored_seconds

ROUNDS = 4
INTERVAL_S = 0.005   # fast enough that a kill lands among PUBACKs the old broker had not saved


class TimedPublisher(Publisher):
    """Publishes readings 0, 1, 2... every few ms from its own thread; can cut the power (SIGKILL
    a set of processes) the instant the next PUBACK arrives, the worst moment for a broker that
    acknowledges before it stores."""

    def __init__(self, *args):
        super().__init__(*args)
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.cut: list[int] = []        # pids to kill at the next PUBACK
        self.power_cut = threading.Event()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        super()._on_publish(client, userdata, mid, reason_code, properties)
        if self.cut:
            for pid in self.cut:        # every node process at once
                os.kill(pid, signal.SIGKILL)
            self.cut = []
            self.power_cut.set()

    def _run(self):
        while not self.stop.is_set():
            self.send(self.sent)
            self.sent += 1
            time.sleep(INTERVAL_S)


def test_kill_everything_rounds_lose_no_acknowledged_reading(env, data_dir, broker, ingest_proc):
    password = add_device(env, "bp-1", broker=broker)
    ingest = ingest_proc()
    pub = TimedPublisher(broker, "bp-1", password)
    pub.thread.start()
    try:
        for rnd in range(ROUNDS):
            start = pub.sent
            wait_for(lambda: pub.sent > start + 100, message="readings published")
            if rnd % 2 == 0:                  # ingest is down: the broker alone holds what comes next
                ingest.stop(signal.SIGKILL)
                wait_for(lambda: pub.sent > start + 400, message="readings published while ingest is down")
            wait_for(lambda: len(pub.acked) > start + 80, timeout=20, message="PUBACKs of this round")
            pub.power_cut.clear()
            pub.cut = [p.pid for p in (broker.proc, ingest.proc) if p.poll() is None]
            pub.power_cut.wait(10)
            broker.proc.wait(10)
            ingest.stop(signal.SIGKILL)
            broker.start()
            wait_port(broker.port)
            ingest = ingest_proc()
        pub.stop.set()
        pub.thread.join(5)
        wait_for(lambda: len(pub.acked) > pub.sent - 20, timeout=30, message="the last PUBACKs")

        def lost() -> list[int]:
            return sorted(pub.acked - set(stored_seconds(data_dir)))

        try:
            wait_for(lambda: not lost(), timeout=30, message="every acknowledged reading stored")
        finally:
            print(f"{pub.sent} published, {len(pub.acked)} acknowledged over {ROUNDS} rounds, "
                  f"{len(lost())} acknowledged readings lost: {lost()[:20]}")
        # a last reading as a fence: once it is stored, any late redelivery has arrived too
        fence = pub.sent
        pub.send(fence)
        wait_for(lambda: fence in stored_seconds(data_dir), timeout=30, message="the fence reading stored")
        assert lost() == []
        seconds = stored_seconds(data_dir)
        assert len(seconds) == len(set(seconds)), "a reading was stored twice"
        assert integrity(data_dir) == "ok"
    finally:
        pub.stop.set()
        pub.close()
