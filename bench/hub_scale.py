"""A county of clinics syncing at once (issue 17 item 5): the hub on PostgreSQL, one worker process
beside two on the same database, measured in one run.

    .venv/bin/python bench/hub_scale.py [--nodes 300] [--batches 2] [--records 50] [--threads 16]
                                        [--baseline-src DIR]

Starts a PostgreSQL server as the tests do (tests/sync_fixtures.Postgres), enrolls N nodes in a
fresh database, then starts `clinic-edge hub serve` over HTTPS (its county CA): once with one
worker, once with two workers on one new database (nodes split between them, as a load balancer
would). Every node is a thread with its own keep-alive HTTPS connection (sync.client.transport):
all start at the same instant, send a hello, then upload their batches one after the other. The
client threads run in several processes so the load generator's own GIL is not what is measured.
Prints p50/p95/max request latency and records/s for each run, beside the goals, and checks that
every record was stored exactly once and every receipt accepted every record. With
`--baseline-src DIR` (an older tree, e.g. `git archive COMMIT | tar -x -C DIR`) each worker count
is run first with the hub from DIR, then with this tree's, in the same run, for a before/after
ratio on a noisy machine.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/sync.py would shadow the sync package when this runs from bench/
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

P95_GOAL = 2.0          # s
SCALE_GOAL = 1.7        # two workers' records/s over one's
CLIENT_TIMEOUT = 30.0   # s, the node's default [sync] timeout


def seal_work(keys: dict, batches: int, records: int, now: datetime) -> dict[str, list[bytes]]:
    from sync import protocol
    from edge.core.reading import utc_iso

    rng = random.Random(5)
    work = {}
    for name, key in keys.items():
        envs = []
        for b in range(batches):
            recs = [{"kind": "reading", "id": f"r-{rng.getrandbits(128):032x}", "version": 1,
                     "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": float(rng.randint(90, 180)),
                                 "effective_time": utc_iso(now - timedelta(seconds=rng.randint(0, 86400))),
                                 "device_id": "bp-1", "status": "valid"}} for _ in range(records)]
            header = {"node": name, "batch": f"{name}-{b}", "from": b * records + 1, "to": (b + 1) * records,
                      "n": records, "at": utc_iso(now)}
            envs.append(protocol.seal(key, header, recs))
        work[name] = envs
    return work


def node_cycle(url: str, name: str, key_pem: bytes, hub_pub: str, ca: str, envs: list[bytes], start: float):
    """One node's cycle: hello, then each batch; returns ([(latency s, ok)], records stored)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from sync import protocol
    from sync.client.transport import HubClient

    ctx = ssl.create_default_context(cafile=ca)
    client = HubClient(url, node=name, key=load_pem_private_key(key_pem, None), hub_pubkey=hub_pub,
                       timeout=CLIENT_TIMEOUT, context=ctx)
    out, stored, accepted = [], 0, True
    time.sleep(max(0.0, start - time.time()))
    calls = [("POST", "/v1/hello", json.dumps({"backlog": len(envs)}).encode())]
    calls += [("PUT", f"/v1/uploads/{protocol.open_envelope(e).batch_id}?offset=0&total={len(e)}", e) for e in envs]
    for method, path, body in calls:
        t = time.monotonic()
        try:
            ans = client.call(method, path, body)
            ok = True
        except Exception:  # noqa: BLE001 - a timeout or refusal counts as a failed request
            ans, ok = None, False
        out.append((time.monotonic() - t, ok))
        if ans is not None and "receipt" in ans.doc:
            r = ans.doc["receipt"]
            stored += r["stored"]
            accepted &= r["accepted"] == r["records"]
    client.close()
    return out, stored, accepted


def client_process(args):
    from concurrent.futures import ThreadPoolExecutor

    jobs, start = args
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(node_cycle, *job, start) for job in jobs]
        return [f.result() for f in futures]


def start_workers(base: dict, data: Path, url: str, n: int, threads: int, src: str | None = None) -> list:
    from sync_fixtures import free_port, wait_port

    procs = []
    for i in range(n):
        port = free_port()
        env = {**base, **({"PYTHONPATH": src} if src else {}), "CLINIC_EDGE_DATA": str(data), "CLINIC_EDGE_HUB_LISTEN": f"127.0.0.1:{port}",
               "CLINIC_EDGE_HUB_DATABASE": url, "CLINIC_EDGE_HUB_THREADS": str(threads)}
        proc = subprocess.Popen([sys.executable, "-m", "edge", "hub", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(data / f"hub-{i}.log", "ab"))
        wait_port(port, 60)     # the first worker makes the county CA and hub key the next one reads
        procs.append((proc, f"https://127.0.0.1:{port}"))
    return procs


def run(pg, base: dict, tmp: Path, workers: int, args, src: str | None = None) -> dict:
    from cryptography.hazmat.primitives import serialization as ser

    from sync import signing
    from sync.hub.storage import HubStore

    url = pg.new_database()
    data = tmp / f"hub-{workers}-{'base' if src else 'this'}"
    data.mkdir()
    store = HubStore(url, pool_size=2)
    now = datetime.now(timezone.utc)
    keys = {f"node-{i:03d}": signing.new_key() for i in range(args.nodes)}
    for name, key in keys.items():
        store.add_node(name, f"code-{name}", now=now, ttl=timedelta(hours=1))
        store.redeem(f"code-{name}", signing.public_text(key), now=now)
    work = seal_work(keys, args.batches, args.records, now)
    procs = start_workers(base, data, url, workers, args.threads, src)
    try:
        hub_pub = signing.public_text(signing.load_key(data / "hub" / "hub.key"))
        ca = str(data / "hub" / "ca" / "county-ca.pem")
        jobs = [(procs[i % workers][1], name, key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                                                ser.NoEncryption()), hub_pub, ca, work[name])
                for i, (name, key) in enumerate(keys.items())]
        groups = [jobs[i::args.client_procs] for i in range(args.client_procs)]
        start = time.time() + 3.0 + args.nodes / 200
        with mp.get_context("spawn").Pool(args.client_procs) as pool:
            t0, cpu0 = time.time(), [cpu_seconds(p.pid) for p, _ in procs]
            results = [r for g in pool.map(client_process, [(g, start) for g in groups]) for r in g]
        elapsed = time.time() - max(start, t0)
        hub_cpu = sum(cpu_seconds(p.pid) - c for (p, _), c in zip(procs, cpu0))
        held = store.export()
        held_keys = [(r["node"], r["kind"], r["record_id"], r["version"]) for r in held]
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(20)
        store.engine.dispose()
    lat = sorted(x for r in results for x, _ in r[0])
    failed = sum(1 for r in results for _, ok in r[0] if not ok)
    stored = sum(r[1] for r in results)
    want = args.nodes * args.batches * args.records
    return {"p50": pct(lat, 50), "p95": pct(lat, 95), "max": lat[-1], "requests": len(lat), "failed": failed,
            "stored": stored, "held": len(held_keys), "unique": len(set(held_keys)), "want": want,
            "all_accepted": all(r[2] for r in results), "seconds": elapsed, "rate": stored / elapsed,
            "cpu_ms": hub_cpu / len(lat) * 1000}


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (/proc/PID/stat, fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--batches", type=int, default=2, help="batches each node uploads")
    ap.add_argument("--records", type=int, default=50, help="records per batch")
    ap.add_argument("--threads", type=int, default=16, help="[hub] threads of each worker")
    ap.add_argument("--client-procs", type=int, default=4, help="processes the simulated nodes run in")
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, in this run")
    ap.add_argument("--baseline-src", default=None, help="an older source tree whose hub runs first, for before/after")
    args = ap.parse_args()
    from sync_fixtures import Postgres

    base = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    pg = Postgres().start()
    rates = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ce-bench-hub-") as t:
            os.chmod(t, 0o755)
            runs = [(w, src) for w in (int(x) for x in args.workers.split(","))
                    for src in ([args.baseline_src] if args.baseline_src else []) + [None]]
            for w, src in runs:
                r = run(pg, base, Path(t), w, args, src)
                rates[(w, src)] = r["rate"]
                print(f"{'baseline' if src else 'this tree'}: {os.getloadavg()[0]:.1f} load; "
                      f"{w} worker(s), {args.nodes} nodes at once x (hello + {args.batches} batches of {args.records}): "
                      f"p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s (goal <= {P95_GOAL:.0f} s), max {r['max']:.2f} s "
                      f"(client timeout {CLIENT_TIMEOUT:.0f} s); {r['failed']}/{r['requests']} requests failed; "
                      f"{r['stored']} records in {r['seconds']:.1f} s = {r['rate']:.0f} records/s; hub CPU "
                      f"{r['cpu_ms']:.1f} ms/request; held "
                      f"{r['held']} ({r['unique']} distinct) of {r['want']}, every receipt all accepted: "
                      f"{r['all_accepted']}", flush=True)
    finally:
        pg.stop()
    for src in {s for _, s in rates}:
        if (1, src) in rates and (2, src) in rates:
            print(f"scale-out{' (baseline)' if src else ''}: two workers {rates[(2, src)] / rates[(1, src)]:.2f}x "
                  f"the records/s of one (goal >= {SCALE_GOAL}x)")


if __name__ == "__main__":
    main()
