"""MQTT ingest benchmark: a real mosquitto, the real `clinic-edge ingest` process, paho publishers.

Prints:
- sustained throughput (readings/s) for N readings published at QoS 1 as fast as the broker takes them;
- p50/p99 publish-to-commit latency at a steady 20 readings/s (commit seen by polling the database);
- the ingest process's peak RSS (VmHWM);
- bytes written to disk per reading (write_bytes of /proc/<pid>/io), in both phases.
Targets (issue 2): >= 500 readings/s, p99 < 100 ms at 20/s, RSS < 60 MB, < 4 KB written per reading.

usage: .venv/bin/python bench/ingest.py [--n 5000] [--rate 20] [--seconds 20]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what if isinstance(what, str) else what()}")


def cli(env, *args) -> str:
    return subprocess.run([sys.executable, "-m", "edge", *args], env=env, check=True, capture_output=True,
                          text=True).stdout


def proc_io(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Publisher:
    def __init__(self, port, device_id, password):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{device_id}")
        self.c.username_pw_set(device_id, password)
        self.c.max_inflight_messages_set(100)
        self.c.max_queued_messages_set(0)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.device_id = device_id

    def send(self, n: int, value: int = 120):
        payload = json.dumps([{"bt": 1763884800 + n, "n": "8480-6", "u": "mm[Hg]", "v": value}])
        return self.c.publish(f"devices/{self.device_id}/readings", payload, qos=1)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def count(db_path: Path) -> int:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT count(*) FROM readings").fetchone()[0]
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--publishers", type=int, default=4)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=os.environ.get("BENCH_DIR", "/var/tmp")))
    port = free_port()
    env = {**os.environ, "CLINIC_EDGE_DATA": str(work), "CLINIC_EDGE_MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "CLINIC_EDGE_BROKER_LISTEN": f"127.0.0.1:{port}"}
    env.pop("CLINIC_EDGE_CONFIG", None)
    creds = {}
    for i in range(args.publishers + 1):
        out = cli(env, "device", "add", f"bench-{i}", "--kind", "bp", "--json")
        creds[f"bench-{i}"] = json.loads(out)["password"]
    broker = subprocess.Popen([sys.executable, "-m", "edge", "broker", "run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ingest = None
    try:
        wait(lambda: port_open(port), 10, "broker")
        ingest = subprocess.Popen([sys.executable, "-m", "edge", "ingest"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status = work / "run" / "ingest.json"
        wait(lambda: status.exists() and json.loads(status.read_text()).get("mqtt_connected"), 15, "ingest")
        db_path = work / "clinic-edge.db"

        # 1. sustained throughput
        pubs = [Publisher(port, f"bench-{i}", creds[f"bench-{i}"]) for i in range(args.publishers)]
        io0 = proc_io(ingest.pid)
        t0 = time.perf_counter()
        per = args.n // len(pubs)
        threads = [threading.Thread(target=lambda p=p: [p.send(k) for k in range(per)]) for p in pubs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = per * len(pubs)
        wait(lambda: count(db_path) >= total, 300, "throughput readings")
        elapsed = time.perf_counter() - t0
        io_sustained = (proc_io(ingest.pid) - io0) / total
        for p in pubs:
            p.close()

        # 2. latency at a steady rate
        lat_pub = Publisher(port, f"bench-{args.publishers}", creds[f"bench-{args.publishers}"])
        sent: dict[int, float] = {}
        seen: dict[int, float] = {}
        stop = threading.Event()

        def poll():
            db = sqlite3.connect(db_path)
            last = db.execute("SELECT max(rowid) FROM readings").fetchone()[0] or 0
            while not stop.is_set():
                rows = db.execute("SELECT rowid, device_time FROM readings WHERE rowid > ? AND device_id = ?",
                                  (last, f"bench-{args.publishers}")).fetchall()
                now = time.perf_counter()
                for rowid, dt in rows:
                    last = max(last, rowid)
                    from datetime import datetime
                    n = int(datetime.fromisoformat(dt.replace("Z", "+00:00")).timestamp()) - 1763884800
                    seen.setdefault(n, now)
                time.sleep(0.001)
            db.close()

        poller = threading.Thread(target=poll)
        poller.start()
        io1 = proc_io(ingest.pid)
        k = int(args.rate * args.seconds)
        start = time.perf_counter()
        for i in range(k):
            target = start + i / args.rate
            time.sleep(max(0.0, target - time.perf_counter()))
            sent[i] = time.perf_counter()
            lat_pub.send(i)
        wait(lambda: len(seen) >= k, 30, lambda: f"latency readings ({len(seen)} of {k} seen, {count(db_path)} rows)")
        stop.set()
        poller.join()
        io_steady = (proc_io(ingest.pid) - io1) / k
        lat_pub.close()
        lats = sorted((seen[i] - sent[i]) * 1000 for i in range(k))
        p50 = statistics.median(lats)
        p99 = lats[min(len(lats) - 1, int(len(lats) * 0.99))]
        rss = peak_rss_mb(ingest.pid)

        print(f"sustained throughput: {total / elapsed:,.0f} readings/s ({total} readings in {elapsed:.2f} s, "
              f"{args.publishers} publishers, QoS 1)   target >= 500")
        print(f"latency at {args.rate:g}/s (publish -> committed): p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"({k} readings)   target p99 < 100 ms")
        print(f"ingest peak RSS: {rss:.1f} MB   target < 60 MB")
        print(f"bytes written per reading: {io_sustained:,.0f} B sustained, {io_steady:,.0f} B at "
              f"{args.rate:g}/s   target < 4096 B")
    finally:
        if ingest:
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(20)
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)


if __name__ == "__main__":
    main()
