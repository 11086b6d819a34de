"""Power-cut durability of MQTT readings: a real mosquitto (as `clinic-edge broker run` configures
it), the real `clinic-edge ingest`, a paho device at QoS 1 noting every PUBACK.

Prints:
- kill-everything rounds: broker and ingest SIGKILLed at the same instant while the device
  publishes (in every other round ingest had been down for a while, so the broker alone held the
  readings); acknowledged readings lost, and how long before the kill each lost one was acked;
- disk bytes written per reading (write_bytes of /proc/<pid>/io) by the broker and by ingest,
  separately and together, and what the block device under $BENCH_DIR received (its sector count
  in /sys/dev/block, after a syncfs: this includes the ext4 journal and late writeback, which
  write_bytes leaves out, and leaves out whole-folio accounting of a small buffered write, which
  write_bytes counts; at 1/s, 20/s and flat out with ingest keeping up (beside the goal of
  issue 17.1: <= 4,096 B together and p99 publish-to-commit <= 250 ms at 20/s), and by the broker
  while ingest is down;
- beside each, plain SQLite group commits of the same size as ingest's (messages per commit, from
  its status) measured in the same run: this machine is noisy, the ratio is what to compare;
- p50/p99 publish-to-PUBACK and publish-to-commit latency at each rate (commit seen by polling
  the database).
`CLINIC_EDGE_MQTT_COMMIT_WAIT_MS=0` in the environment measures ingest without the wait. Each node's
data directory goes in $BENCH_DIR (default /var/tmp: a disk, not a tmpfs) and is removed after its
run unless BENCH_KEEP is set.

usage: .venv/bin/python bench/durability.py [--rounds 10] [--seconds 20] [--flat 2000]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import cli, free_port, port_open, proc_io, wait  # noqa: E402  (bench/ingest.py)

T0 = 1763884800


class Node:
    def __init__(self):
        self.work = Path(tempfile.mkdtemp(prefix="bench-durability-", dir=os.environ.get("BENCH_DIR", "/var/tmp")))
        self.port = free_port()
        self.env = {**os.environ, "CLINIC_EDGE_DATA": str(self.work),
                    "CLINIC_EDGE_MQTT_URL": f"mqtt://127.0.0.1:{self.port}",
                    "CLINIC_EDGE_BROKER_LISTEN": f"127.0.0.1:{self.port}"}
        self.env.pop("CLINIC_EDGE_CONFIG", None)
        self.password = json.loads(cli(self.env, "device", "add", "dev-1", "--kind", "bp", "--json"))["password"]
        self.broker = self.ingest = None
        self.db = self.work / "clinic-edge.db"

    def start_broker(self):
        self.broker = subprocess.Popen([sys.executable, "-m", "edge", "broker", "run"], env=self.env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: port_open(self.port), 10, "broker")

    def start_ingest(self):
        log = open(self.work / "ingest.log", "ab") if os.environ.get("BENCH_KEEP") else subprocess.DEVNULL
        self.ingest = subprocess.Popen([sys.executable, "-m", "edge", "ingest"], env=self.env,
                                       stdout=log, stderr=log)
        status = self.work / "run" / "ingest.json"

        def up():
            try:
                s = json.loads(status.read_text())
            except (OSError, ValueError):
                return False
            return s.get("mqtt_connected") and s.get("pid") == self.ingest.pid
        wait(up, 30, "ingest")

    def kill_all(self):
        for p in (self.broker, self.ingest):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        for p in (self.broker, self.ingest):
            if p is not None:
                p.wait(10)

    def stored(self) -> dict[int, str]:
        db = sqlite3.connect(self.db)
        try:
            rows = db.execute("SELECT device_time FROM readings").fetchall()
        finally:
            db.close()
        return {int(datetime.fromisoformat(r[0].replace("Z", "+00:00")).timestamp()) - T0: r[0] for r in rows}

    def stop(self):
        for p in (self.ingest, self.broker):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.work, ignore_errors=True)


class Device:
    def __init__(self, node: Node):
        self.mid_acked_at: dict[int, float] = {}   # filled by paho's thread (no lock: it would deadlock)
        self.mid_to_n: dict[int, int] = {}
        self.sent_at: dict[int, float] = {}
        self.sent_mono: dict[int, float] = {}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-1")
        c.username_pw_set("dev-1", node.password)
        c.max_inflight_messages_set(20)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.1, 1)
        c.on_publish = self._on_publish
        c.connect("127.0.0.1", node.port)
        c.loop_start()
        self.c = c
        self.n = 0

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.mid_acked_at.setdefault(mid, time.monotonic())

    @property
    def acked_at(self) -> dict[int, float]:
        """reading number -> when its PUBACK came (mids stay unique: fewer than 65,535 are sent)"""
        return {self.mid_to_n[m]: t for m, t in list(self.mid_acked_at.items()) if m in self.mid_to_n}

    def send(self):
        payload = json.dumps([{"bt": T0 + self.n, "n": "8480-6", "u": "mm[Hg]", "v": 100 + self.n % 80}])
        self.sent_at[self.n] = time.perf_counter()
        self.sent_mono[self.n] = time.monotonic()
        info = self.c.publish("devices/dev-1/readings", payload, qos=1)
        self.mid_to_n[info.mid] = self.n
        self.n += 1

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def kill_rounds(rounds: int) -> None:
    node = Node()
    node.start_broker()
    node.start_ingest()
    dev = Device(node)
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            dev.send()
            time.sleep(0.01)
    t = threading.Thread(target=publish, daemon=True)
    t.start()
    kills, kill_at = [], []
    try:
        for rnd in range(rounds):
            start = dev.n
            wait(lambda: dev.n > start + 100, 30, "published")
            if rnd % 2 == 0:
                os.kill(node.ingest.pid, signal.SIGKILL)
                node.ingest.wait(10)
                wait(lambda: dev.n > start + 250, 30, "published while ingest is down")
            killed = time.monotonic()
            kill_at.append(dev.n)
            node.kill_all()
            kills.append(killed)
            node.start_broker()
            node.start_ingest()
        stop.set()
        t.join()
        wait(lambda: len(dev.acked_at) >= dev.n - 20, 60, "last PUBACKs")
        end = time.monotonic() + 60
        while time.monotonic() < end and set(dev.acked_at) - set(node.stored()):
            time.sleep(0.5)
        acked = dev.acked_at
        lost = sorted(set(acked) - set(node.stored()))
        ages = [min((k - acked[n] for k in kills if k - acked[n] > -1), default=None) for n in lost]
        print(f"kill-everything rounds: {rounds} ({(rounds + 1) // 2} with ingest down), {dev.n} published, "
              f"{len(acked)} acknowledged, {len(lost)} acknowledged readings lost   goal 0")
        if lost:
            print("  lost readings were acknowledged this long before a kill (ms): "
                  + ", ".join(f"{a * 1000:.1f}" if a is not None else "?" for a in ages)
                  + f" (readings {', '.join(map(str, lost[:20]))}; published: {dev.n}; kills at reading "
                  + ", ".join(str(n) for n in kill_at) + ")")
    finally:
        stop.set()
        dev.close()
        node.stop()


def device_written(path: Path) -> int | None:
    """Bytes the block device holding `path` has received, after a syncfs of its file system
    (so what is still dirty in the page cache is counted now); None if it is not a block device."""
    st = os.stat(path)
    stat = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat")
    fd = os.open(path, os.O_RDONLY)
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    finally:
        os.close(fd)
    try:
        return int(stat.read_text().split()[6]) * 512
    except (OSError, IndexError, ValueError):
        return None


GOAL_BYTES = 4096      # disk bytes per reading, broker and ingest together, at 20/s (issue 17.1)
GOAL_P99_MS = 250      # publish -> commit at 20/s


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def steady(rate: float | None, count: int) -> dict:
    """`count` readings at `rate`/s (None: flat out, 20 in flight); bytes each process wrote per
    reading, latencies, and how many messages ingest committed per transaction."""
    node = Node()
    node.start_broker()
    node.start_ingest()
    dev = Device(node)
    try:
        time.sleep(1)
        b0, i0, d0 = proc_io(node.broker.pid), proc_io(node.ingest.pid), device_written(node.work)
        seen: dict[int, float] = {}
        done = threading.Event()

        def poll():
            while not done.is_set():
                for n in node.stored():
                    seen.setdefault(n, time.perf_counter())
                time.sleep(0.002)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        start = time.perf_counter()
        for i in range(count):
            if rate:
                time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            else:
                while i - len(dev.mid_acked_at) >= 20:   # flat out, as many in flight as paho allows
                    time.sleep(0.0005)
            dev.send()
        end = time.monotonic() + 60
        while len(seen) < count and time.monotonic() < end:
            time.sleep(0.05)
        elapsed = max(seen.values(), default=start) - start
        done.set()
        poller.join()
        broker_b = (proc_io(node.broker.pid) - b0) / count
        ingest_b = (proc_io(node.ingest.pid) - i0) / count
        d1 = device_written(node.work)
        device_b = (d1 - d0) / count if d0 is not None and d1 is not None else None
        node.ingest.send_signal(signal.SIGTERM)
        node.ingest.wait(20)
        status = json.loads((node.work / "run" / "ingest.json").read_text())
        acked = dev.acked_at
        return {"rate": rate, "count": count, "stored": len(seen), "elapsed": elapsed,
                "broker": broker_b, "ingest": ingest_b, "device": device_b,
                "commit_ms": [(seen[n] - dev.sent_at[n]) * 1000 for n in seen],
                "ack_ms": [(acked[n] - dev.sent_mono[n]) * 1000 for n in range(count) if n in acked],
                # an ingest without the count (before issue 17) committed whatever had arrived: 1 here
                "group": status.get("mqtt_messages", 0) / status["mqtt_commits"] if status.get("mqtt_commits")
                else None}
    finally:
        dev.close()
        node.stop()


def raw_baseline(group: float, count: int = 2000) -> tuple[float, float, float | None]:
    """The same group size on plain SQLite (WAL, synchronous=FULL, 1 KiB pages, one table with a
    SenML-sized row and no index): (disk bytes per reading, p99 commit ms, block device bytes per
    reading). Measured in this
    process, in this run, so the ratio to ingest does not depend on how busy the machine is."""
    path = Path(tempfile.mkdtemp(prefix="bench-raw-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))) / "raw.db"
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("page_size = 1024", "journal_mode = WAL", "synchronous = FULL", "wal_autocheckpoint = 4096"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, payload TEXT)")
    payload = json.dumps([{"bt": T0, "n": "8480-6", "u": "mm[Hg]", "v": 120}])
    me = os.getpid()
    io0, dev0, n, times = proc_io(me), device_written(path.parent), 0, []
    size = max(1, round(group))
    while n < count:
        t = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO r (payload) VALUES (?)", [(payload,)] * size)
        db.execute("COMMIT")
        times.append((time.perf_counter() - t) * 1000)
        n += size
    written = (proc_io(me) - io0) / n
    dev1 = device_written(path.parent)
    db.close()
    shutil.rmtree(path.parent, ignore_errors=True)
    return written, pct(times, 0.99), (dev1 - dev0) / n if dev0 is not None and dev1 is not None else None


def report(r: dict) -> None:
    what = f"{r['rate']:g}/s" if r["rate"] else "flat out"
    raw_b, raw_ms, raw_dev = raw_baseline(r["group"] or 1)
    total = r["broker"] + r["ingest"]
    goal = (f"   goal <= {GOAL_BYTES} B together, p99 commit <= {GOAL_P99_MS} ms" if r["rate"] == 20 else "")
    rate = f", {r['stored'] / r['elapsed']:,.0f} readings/s" if not r["rate"] and r["elapsed"] else ""
    group = f"{r['group']:.1f}" if r["group"] else "?"
    device = f"{r['device']:,.0f} B" if r["device"] is not None else "? (not a block device)"
    print(f"{what} ({r['stored']} of {r['count']} readings stored{rate}, {group} messages per commit):\n"
          f"  bytes written per reading: broker {r['broker']:,.0f} B, ingest {r['ingest']:,.0f} B, together "
          f"{total:,.0f} B{goal}\n"
          f"  the block device under the data directory received {device:} per reading (ext4 journal "
          f"and writeback included, after a syncfs)\n"
          f"  raw SQLite, same group size, same run: {raw_b:,.0f} B per reading (ingest {r['ingest'] / raw_b:.1f}x), "
          f"commit p99 {raw_ms:.1f} ms, block device {raw_dev or 0:,.0f} B per reading\n"
          f"  publish -> PUBACK p50 {pct(r['ack_ms'], 0.5):.1f} ms, p99 {pct(r['ack_ms'], 0.99):.1f} ms; "
          f"publish -> commit p50 {pct(r['commit_ms'], 0.5):.1f} ms, p99 {pct(r['commit_ms'], 0.99):.1f} ms")


def broker_alone(rate: float, seconds: float) -> None:
    """The broker alone, ingest down: what it writes per reading it queues."""
    node = Node()
    node.start_broker()
    dev = Device(node)
    try:
        b1, queued = proc_io(node.broker.pid), int(rate * seconds)
        start = time.perf_counter()
        for i in range(queued):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            dev.send()
        time.sleep(1)
        print(f"ingest down, {queued} readings queued at {rate:g}/s: broker wrote "
              f"{(proc_io(node.broker.pid) - b1) / queued:,.0f} B per reading")
    finally:
        dev.close()
        node.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10, help="kill-everything rounds (0: none)")
    ap.add_argument("--seconds", type=float, default=20, help="length of the 20/s phase")
    ap.add_argument("--flat", type=int, default=2000, help="readings sent flat out")
    args = ap.parse_args()
    if args.rounds:
        kill_rounds(args.rounds)
    wait_ms = os.environ.get("CLINIC_EDGE_MQTT_COMMIT_WAIT_MS", "the default")
    print(f"[mqtt] commit_wait_ms: {wait_ms}")
    for rate, count in ((1, int(max(args.seconds, 30))), (20, int(20 * args.seconds)), (None, args.flat)):
        report(steady(rate, count))
    broker_alone(20, args.seconds)


if __name__ == "__main__":
    main()
