"""Sync benchmark: a busy clinic's 30-day backlog through a weak, breaking uplink.

Prints:
  1. bytes on the wire per reading and per follow-up (everything counted: hello, batches, HTTP
     headers both ways, receipts, the downlink poll), measured at a TCP proxy;
  2. time to drain the whole backlog through a 64 kbit/s link (user-space token bucket, both
     directions share it) whose connections are all cut every 30 s, as a share of the ideal time
     (the same bytes at the link's full capacity);
  3. the hub's sustained ingest rate with N simulated nodes posting at once, on PostgreSQL
     (a server this script starts itself, as the tests do).

usage: .venv/bin/python bench/sync.py [--readings 10000] [--followups 600] [--nodes 300] [--skip-drain]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this script is named like the `sync` package: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from edge.core import config as config_mod, devices, outbox  # noqa: E402
from edge.core.clock import Anchor  # noqa: E402
from edge.core.ingest import ingest  # noqa: E402
from edge.core.node import Node  # noqa: E402
from edge.core.reading import Reading, utc_iso  # noqa: E402

LINK_BPS = 64_000 / 8          # 64 kbit/s in bytes per second
DROP_EVERY = 30.0
LINK_GOALS = {5.0: 0.6, 10.0: 0.75, 30.0: 0.85}   # share of the link used, by seconds between cuts (issue 17)


class SteppingClock:
    def __init__(self, start: datetime):
        self.t, self.mono = start, 1000.0

    def step(self, seconds: float):
        self.t += timedelta(seconds=seconds)
        self.mono += seconds

    def now(self):
        return self.t

    def monotonic(self):
        return self.mono

    def boot_id(self):
        return "5b7c1e0a-93d4-4a1e-9f61-0c2d7e8b4a11"

    def anchor(self):
        return Anchor(self.t, self.boot_id(), self.mono)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.3).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


# ---- the backlog -----------------------------------------------------------------------------------

DEVICES = [("bp-1", "bp"), ("bp-2", "bp"), ("glu-1", "glucose"), ("spo2-1", "spo2"), ("scale-1", "scale")]
CODES = {"bp": [("8480-6", "mm[Hg]", 95, 185), ("8462-4", "mm[Hg]", 55, 110), ("8867-4", "/min", 50, 110)],
         "glucose": [("2339-0", "mmol/L", 3.5, 16.0)], "spo2": [("2708-6", "%", 88, 100), ("8867-4", "/min", 50, 110)],
         "scale": [("29463-7", "kg", 40, 95)]}


def fill(env: dict[str, str], readings: int, followups: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, 0, 0, tzinfo=timezone.utc)
    clock = SteppingClock(start)
    node = Node(config_mod.load(env=env), clock=clock)
    for dev, kind in DEVICES:
        devices.add(node.store, dev, kind=kind, name=dev, now=start, actor="bench")
    residents = [f"res-{i:04d}" for i in range(400)]
    per_step = max(1, readings // 2000)
    made = 0
    step = 30 * 86400 / max(1, readings / per_step)
    while made < readings:
        clock.step(rng.uniform(0.2, 1.8) * step)
        dev, kind = rng.choice(DEVICES)
        batch = []
        for code, unit, lo, hi in CODES[kind]:
            if made + len(batch) >= readings:
                break
            value = round(rng.uniform(lo, hi), 1 if unit in ("mmol/L", "kg") else 0)
            dt = clock.now() - timedelta(seconds=rng.randint(2, 40))
            batch.append(Reading(dev, code, value, unit, "mqtt", device_time=dt, source_key=f"{made + len(batch)}"))
        ingest(node.store, batch, clock=clock)
        made += len(batch)
    with node.store.atomic() as conn:
        for i in range(followups):
            at = start + timedelta(seconds=rng.uniform(0, 30 * 86400))
            payload = followup_payload(rng, i, rng.choice(residents), at)
            outbox.add(conn, kind="followup", record_id=payload["id"], payload=payload, at=at)
    node.close()


def followup_payload(rng: random.Random, i: int, resident: str, at: datetime) -> dict:
    """About the size of a national hypertension follow-up (国家基本公共卫生服务规范, 高血压随访表)."""
    values = {
        "visit_date": at.date().isoformat(), "visit_mode": rng.choice(["1", "2", "3"]),
        "symptoms": rng.sample(["1", "2", "3", "4", "5", "6", "7", "8", "9"], rng.randint(0, 2)) or ["1"],
        "symptoms_other": rng.choice(["", "", "偶有头晕", "夜间睡眠差"]),
        "sbp": rng.randint(110, 170), "dbp": rng.randint(65, 100), "heart_rate": rng.randint(58, 96),
        "weight": round(rng.uniform(48, 90), 1), "weight_target": round(rng.uniform(48, 80), 1),
        "height": rng.randint(150, 180), "bmi": round(rng.uniform(19, 30), 1), "waist": rng.randint(70, 100),
        "other_signs": "", "smoking_per_day": rng.choice([0, 0, 0, 5, 10, 20]), "smoking_target": 0,
        "drinking_per_day": rng.choice([0, 0, 1, 2]), "drinking_target": 0,
        "exercise_times_week": rng.randint(0, 7), "exercise_minutes": rng.choice([0, 20, 30, 60]),
        "exercise_times_week_target": 5, "exercise_minutes_target": 30, "salt_intake": rng.choice(["1", "2", "3"]),
        "salt_intake_target": "1", "psychological": rng.choice(["1", "2"]), "compliance": rng.choice(["1", "2"]),
        "lab_results": rng.choice(["", "", "空腹血糖6.1"]), "medication_adherence": rng.choice(["1", "2", "3"]),
        "adverse_reactions": rng.choice(["1", "1", "2"]), "classification": rng.choice(["1", "2", "3", "4"]),
        "medications": [{"name": rng.choice(["氨氯地平片", "硝苯地平缓释片", "厄贝沙坦片", "缬沙坦胶囊"]),
                         "dose": rng.choice(["5mg", "10mg", "30mg", "150mg"]), "frequency": "每日1次"}
                        for _ in range(rng.randint(1, 2))],
        "referral_reason": "", "referral_facility": "", "next_visit_date": (at + timedelta(days=90)).date().isoformat(),
        "doctor_signature": rng.choice(["张医生", "李医生"]),
    }
    fid = f"f-{i:06d}{rng.getrandbits(64):016x}"
    return {"id": fid, "version": 1, "resident_id": resident, "form": "hypertension", "values": values,
            "sources": {"sbp": f"r-{rng.getrandbits(128):032x}", "dbp": f"r-{rng.getrandbits(128):032x}"},
            "alerts": [], "author": values["doctor_signature"], "saved_at": utc_iso(at), "reason": None}


# ---- a link: throttled, dropping, counting ----------------------------------------------------------

class Link:
    """A TCP proxy that meters bytes both ways, optionally at `bps` shared by all connections,
    cutting every open connection every `drop_every` seconds."""

    def __init__(self, upstream: int, bps: float | None = None, drop_every: float | None = None):
        self.upstream, self.bps, self.drop_every = upstream, bps, drop_every
        self.bytes = 0
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.next_free = time.monotonic()
        self.drops = 0

    def start(self) -> "Link":
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.t0 = time.monotonic()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()
        if self.drop_every:
            threading.Thread(target=self._dropper, daemon=True).start()
        return self

    def stop(self):
        self.running = False
        self.sock.close()

    def _dropper(self):
        while self.running:
            time.sleep(self.drop_every)
            with self.lock:
                conns, self.conns = self.conns, []
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.drops += 1

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def _pace(self, n: int) -> None:
        if not self.bps:
            return
        with self.lock:
            start = max(self.next_free, time.monotonic())
            self.next_free = start + n / self.bps
            wait = self.next_free - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _pump(self, src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(1024 if self.bps else 65536)
                if not data:
                    break
                self._pace(len(data))
                dst.sendall(data)
                with self.lock:
                    self.bytes += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ---- runs ----------------------------------------------------------------------------------------

def start_hub(base: dict[str, str], data: Path, database: str, threads: int = 16):
    port = free_port()
    env = {**base, "CLINIC_EDGE_DATA": str(data), "CLINIC_EDGE_HUB_LISTEN": f"127.0.0.1:{port}",
           "CLINIC_EDGE_HUB_DATABASE": database, "CLINIC_EDGE_HUB_THREADS": str(threads),
           # plain HTTP on loopback so the byte-counting proxy sees the requests; the TLS cost is
           # bench/tls_handshake.py's figure
           "CLINIC_EDGE_HUB_TLS": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "edge", "hub", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(data / "hub.log", "ab"))
    wait_port(port)
    return proc, port, env


def cli(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], env=env, capture_output=True, text=True, timeout=900)


def backlog_run(tmp: Path, base: dict, readings: int, followups: int, name: str, *, bps=None, drop=None,
                sync_cfg: dict | None = None) -> dict:
    d = tmp / name
    (d / "hub").mkdir(parents=True)
    node_env = {**base, "CLINIC_EDGE_DATA": str(d / "node")}
    fill(node_env, readings, followups)
    proc, port, hub_env = start_hub(base, d / "hub", f"sqlite:///{d / 'hub' / 'hub.db'}")
    try:
        code = cli(hub_env, "hub", "node", "add", "bench-clinic").stdout.strip().splitlines()[-1]
        r = cli(node_env, "enroll", "--hub", f"http://127.0.0.1:{port}", "--code", code)
        assert r.returncode == 0, r.stderr
        link = Link(port, bps, drop).start()
        env = {**node_env, "CLINIC_EDGE_SYNC_HUB_URL": link.url, "CLINIC_EDGE_SYNC_ATTEMPTS": "1000",
               "CLINIC_EDGE_SYNC_BACKOFF_BASE_MS": "200", "CLINIC_EDGE_SYNC_BACKOFF_CAP_MS": "2000",
               **{f"CLINIC_EDGE_SYNC_{k.upper()}": str(v) for k, v in (sync_cfg or {}).items()}}
        t0 = time.monotonic()
        r = cli(env, "sync", "--once")
        elapsed = time.monotonic() - t0
        link.stop()
        assert r.returncode == 0, r.stderr
        held = json.loads(cli(hub_env, "hub", "export", "--json").stdout)
        assert len(held) == readings + followups, (len(held), readings + followups)
        return {"bytes": link.bytes, "seconds": elapsed, "drops": link.drops}
    finally:
        proc.terminate()
        proc.wait(10)


def cycle_costs(tmp: Path, base: dict) -> dict:
    """The fixed cost of a cycle once the node is in step with the hub: the bytes of a cycle with
    nothing to send, then of one with a single new reading (issue 17.4's figures)."""
    d = tmp / "cycle"
    (d / "hub").mkdir(parents=True)
    node_env = {**base, "CLINIC_EDGE_DATA": str(d / "node")}
    fill(node_env, 5, 0)
    proc, port, hub_env = start_hub(base, d / "hub", f"sqlite:///{d / 'hub' / 'hub.db'}")
    try:
        code = cli(hub_env, "hub", "node", "add", "bench-clinic").stdout.strip().splitlines()[-1]
        assert cli(node_env, "enroll", "--hub", f"http://127.0.0.1:{port}", "--code", code).returncode == 0
        link = Link(port).start()
        env = {**node_env, "CLINIC_EDGE_SYNC_HUB_URL": link.url}
        from sync.client import state
        from sync.client.controller import Cycle

        costs = {}
        # cycles as the daemon runs them; the backlog is a month old, so the first cycle also
        # carries a reading of today from bp-1: its next reading is not news for the county's
        # dashboard ("silent for 7 days" does not change), one from bp-2 is (a hello goes too)
        news = {"first": ("bp-1", "today"), "one reading": ("bp-1", "one"), "device back": ("bp-2", "back")}
        for name in ("first", "empty", "one reading", "device back"):
            node = Node(config_mod.load(env=env))
            if name in news:
                dev, key = news[name]
                ingest(node.store, [Reading(dev, "8480-6", 128.0, "mm[Hg]", "mqtt", source_key=key)])
            before = link.bytes
            result = Cycle(node, state.identity(node), always_hello=False).run()
            node.close()
            assert result.ok, result.error
            costs[name] = link.bytes - before
        link.stop()
        return costs
    finally:
        proc.terminate()
        proc.wait(10)


def ingest_rate(tmp: Path, base: dict, nodes: int, batches_per_node: int, records_per_batch: int) -> dict:
    from sync_fixtures import Postgres

    from sync import protocol, signing
    from sync.hub.storage import HubStore

    pg = Postgres().start()
    try:
        url = pg.new_database()
        d = tmp / "pg-hub"
        d.mkdir()
        store = HubStore(url, pool_size=2)
        keys, now = {}, datetime.now(timezone.utc)
        for i in range(nodes):
            name = f"node-{i:03d}"
            keys[name] = signing.new_key()
            store.add_node(name, f"code-{i}", now=now, ttl=timedelta(hours=1))
            store.redeem(f"code-{i}", signing.public_text(keys[name]), now=now)
        store.engine.dispose()
        proc, port, _ = start_hub(base, d, url, threads=32)
        rng = random.Random(5)
        work = {}
        for name, key in keys.items():
            envs = []
            for b in range(batches_per_node):
                recs = [{"kind": "reading", "id": f"r-{rng.getrandbits(128):032x}", "version": 1,
                         "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": float(rng.randint(90, 180)),
                                     "effective_time": utc_iso(now - timedelta(seconds=rng.randint(0, 86400))),
                                     "device_id": "bp-1", "status": "valid"}} for _ in range(records_per_batch)]
                header = {"node": name, "batch": f"{name}-{b}", "from": b * records_per_batch,
                          "to": (b + 1) * records_per_batch - 1, "n": records_per_batch, "at": utc_iso(now)}
                envs.append(protocol.seal(key, header, recs))
            work[name] = envs
        from sync.client.transport import HubClient

        hub_pub = json.loads(__import__("urllib.request").request.urlopen(
            f"http://127.0.0.1:{port}/healthz").read())["hub_pubkey"]

        def post_all(name: str) -> int:
            client = HubClient(f"http://127.0.0.1:{port}", node=name, key=keys[name], hub_pubkey=hub_pub, timeout=120)
            stored = 0
            for env in work[name]:
                batch = protocol.open_envelope(env).batch_id
                ans = client.call("PUT", f"/v1/uploads/{batch}?offset=0&total={len(env)}", env)
                stored += ans.doc["receipt"]["stored"]
            return stored

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=nodes) as pool:
            stored = sum(pool.map(post_all, keys))
        elapsed = time.monotonic() - t0
        proc.terminate()
        proc.wait(10)
        return {"records": stored, "seconds": elapsed, "batches": nodes * batches_per_node}
    finally:
        pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=10000)
    ap.add_argument("--followups", type=int, default=600)
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--batches-per-node", type=int, default=4)
    ap.add_argument("--records-per-batch", type=int, default=100)
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--skip-bytes", action="store_true", help="skip the per-record byte runs")
    ap.add_argument("--drop-every", type=float, default=DROP_EVERY, help="seconds between link cuts")
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    with tempfile.TemporaryDirectory(prefix="ce-bench-sync-") as t:
        tmp = Path(t)
        os.chmod(tmp, 0o755)
        if not args.skip_bytes:
            r = backlog_run(tmp, base, args.readings, 0, "readings")
            print(f"readings:   {args.readings} readings, {r['bytes']} bytes on the wire "
                  f"= {r['bytes'] / args.readings:.1f} bytes/reading (issue 17.4 goal <= 15)", flush=True)
            f = backlog_run(tmp, base, 0, args.followups, "followups")
            print(f"follow-ups: {args.followups} follow-ups, {f['bytes']} bytes on the wire "
                  f"= {f['bytes'] / args.followups:.0f} bytes/follow-up", flush=True)
            c = cycle_costs(tmp, base)
            print(f"cycle:      first after enrolling {c['first']} B; then nothing to send {c['empty']} B "
                  f"(target <= 500), one new reading {c['one reading']} B (target <= 800); one reading from a device "
                  f"silent for 7 days (with the hello it causes) {c['device back']} B", flush=True)
        if not args.skip_drain:
            clean = backlog_run(tmp, base, args.readings, args.followups, "clean")
            ideal = clean["bytes"] / LINK_BPS
            drain = backlog_run(tmp, base, args.readings, args.followups, "drain", bps=LINK_BPS,
                                drop=args.drop_every)
            print(f"drain:      {args.readings} readings + {args.followups} follow-ups through 64 kbit/s cut every "
                  f"{args.drop_every:.0f} s: {drain['seconds']:.1f} s ({drain['drops']} cuts, {drain['bytes']} bytes); "
                  f"ideal {ideal:.1f} s ({clean['bytes']} bytes at full capacity) -> {ideal / drain['seconds']:.2f} "
                  f"of capacity (issue 17.4 goal >= {LINK_GOALS.get(args.drop_every, 0.8)})", flush=True)
        if not args.skip_ingest:
            i = ingest_rate(tmp, base, args.nodes, args.batches_per_node, args.records_per_batch)
            print(f"hub ingest: {args.nodes} nodes posting at once on PostgreSQL: {i['records']} records in "
                  f"{i['batches']} batches in {i['seconds']:.1f} s = {i['records'] / i['seconds']:.0f} records/s, "
                  f"{i['batches'] / i['seconds']:.1f} batches/s", flush=True)


if __name__ == "__main__":
    main()
