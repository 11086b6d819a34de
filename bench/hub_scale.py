"""A county of clinics syncing at once (issue 17 item 5): the hub on PostgreSQL, with and without
admission control, one worker process beside two on the same database, measured in one run.

    .venv/bin/python bench/hub_scale.py [--nodes 300] [--batches 2] [--records 50] [--threads 16]
                                        [--limit 8] [--retry 60] [--runs off:1,on:1,on:2]
                                        [--baseline-src DIR]

Starts a PostgreSQL server as the tests do (tests/sync_fixtures.Postgres), enrolls N nodes in a
fresh database, then starts `clinic-edge hub serve` over HTTPS (its county CA) for each run: `off:1`
is one worker without admission control ([hub] uploads_in_service = 0, every upload queued), `on:W`
is W workers on one new database with `uploads_in_service = --limit` and `busy_retry_max_seconds =
--retry` (nodes split between the workers, as a load balancer would). Every node is a thread with
its own keep-alive HTTPS connection (sync.client.transport): all start at the same instant, send a
hello, then upload their batches one after the other; a node turned away (503 + Retry-After) waits
the Retry-After, as the daemon does, and sends again. The client threads run in several processes
so the load generator's own GIL is not what is measured. Prints, per run: p50/p95/max latency of
the requests served, the share of requests turned away, records/s, and the hub's CPU-seconds per
1,000 records, beside the goals; and checks that every record was stored exactly once and every
receipt accepted every record. With `--baseline-src DIR` (an older tree, e.g. `git archive COMMIT
| tar -x -C DIR`) each run is made first with the hub from DIR, then with this tree's.

What the machine limits: the load generator, the hub workers and PostgreSQL share its cores, so
records/s and "two workers over one" are bound by the machine's CPU, not the hub (on 2 cores two
workers cannot be faster than one). Latency of served requests and the share shed are what
admission control changes; CPU-seconds per 1,000 records is machine-independent: equal for one and
two workers means they scale out on a machine with the cores (no lock between them costs CPU).
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
    """One node's cycle: hello, then each batch, each sent again after the Retry-After of a "hub
    busy" answer; returns ([(latency s, ok)] of the requests served, records stored, all accepted,
    answers "busy")."""
    from edge.core.suites import read_pem
    from sync import protocol
    from sync.client.errors import HubBusy
    from sync.client.transport import HubClient

    ctx = ssl.create_default_context(cafile=ca)
    client = HubClient(url, node=name, key=read_pem(key_pem, private=True)[1], hub_pubkey=hub_pub,
                       timeout=CLIENT_TIMEOUT, context=ctx)
    out, stored, accepted, busy = [], 0, True, 0
    time.sleep(max(0.0, start - time.time()))
    calls = [("POST", "/v1/hello", json.dumps({"backlog": len(envs)}).encode())]
    calls += [("PUT", f"/v1/uploads/{protocol.open_envelope(e).batch_id}?offset=0&total={len(e)}", e) for e in envs]
    for method, path, body in calls:
        while True:
            t = time.monotonic()
            try:
                ans = client.call(method, path, body)
                ok = True
            except HubBusy as e:          # "later": wait what the hub said, as the daemon does
                busy += 1
                time.sleep(e.retry_after + random.random())   # and up to a second more, as Cycle._busy
                continue
            except Exception:  # noqa: BLE001 - a timeout or refusal counts as a failed request
                ans, ok = None, False
            break
        out.append((time.monotonic() - t, ok))
        if ans is not None and "receipt" in ans.doc:
            r = ans.doc["receipt"]
            stored += r["stored"]
            accepted &= r["accepted"] == r["records"]
    client.close()
    return out, stored, accepted, busy


def client_process(args):
    from concurrent.futures import ThreadPoolExecutor

    jobs, start = args
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(node_cycle, *job, start) for job in jobs]
        return [f.result() for f in futures]


def start_workers(base: dict, data: Path, url: str, n: int, threads: int, src: str | None = None, *,
                  limit: int = 0, retry: int = 10) -> list:
    from sync_fixtures import free_port, wait_port

    procs = []
    for i in range(n):
        port = free_port()
        env = {**base, **({"PYTHONPATH": src} if src else {}), "CLINIC_EDGE_DATA": str(data), "CLINIC_EDGE_HUB_LISTEN": f"127.0.0.1:{port}",
               "CLINIC_EDGE_HUB_DATABASE": url, "CLINIC_EDGE_HUB_THREADS": str(threads),
               "CLINIC_EDGE_HUB_UPLOADS_IN_SERVICE": str(limit), "CLINIC_EDGE_HUB_BUSY_RETRY_MAX_SECONDS": str(retry)}
        proc = subprocess.Popen([sys.executable, "-m", "edge", "hub", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(data / f"hub-{i}.log", "ab"))
        wait_port(port, 60)     # the first worker makes the county CA and hub key the next one reads
        procs.append((proc, f"https://127.0.0.1:{port}"))
    return procs


def run(pg, base: dict, tmp: Path, workers: int, limit: int, args, src: str | None = None) -> dict:
    from sync import signing
    from sync.hub.storage import HubStore

    url = pg.new_database()
    data = Path(tempfile.mkdtemp(prefix=f"hub-{workers}-{limit}-{'base' if src else 'this'}-", dir=tmp))
    store = HubStore(url, pool_size=2)
    now = datetime.now(timezone.utc)
    keys = {f"node-{i:03d}": signing.new_key() for i in range(args.nodes)}
    for name, key in keys.items():
        store.add_node(name, f"code-{name}", now=now, ttl=timedelta(hours=1))
        store.redeem(f"code-{name}", signing.public_text(key), now=now)
    work = seal_work(keys, args.batches, args.records, now)
    procs = start_workers(base, data, url, workers, args.threads, src, limit=limit, retry=args.retry)
    try:
        hub_pub = signing.public_text(signing.load_key(data / "hub" / "hub.key"))
        ca = str(data / "hub" / "ca" / "county-ca.pem")
        jobs = [(procs[i % workers][1], name, key.pem(), hub_pub, ca, work[name])
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
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        store.engine.dispose()
    lat = sorted(x for r in results for x, ok in r[0] if ok)
    failed = sum(1 for r in results for _, ok in r[0] if not ok)
    busy = sum(r[3] for r in results)
    stored = sum(r[1] for r in results)
    want = args.nodes * args.batches * args.records
    answered = len(lat) + failed + busy
    return {"p50": pct(lat, 50), "p95": pct(lat, 95), "max": lat[-1], "requests": answered, "failed": failed,
            "busy": busy, "shed_share": busy / answered, "served": len(lat),
            "stored": stored, "held": len(held_keys), "unique": len(set(held_keys)), "want": want,
            "all_accepted": all(r[2] for r in results), "seconds": elapsed, "rate": stored / elapsed,
            "cpu_per_1000": hub_cpu / max(stored, 1) * 1000, "cpu_ms": hub_cpu / answered * 1000}


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
    ap.add_argument("--limit", type=int, default=None, help="[hub] uploads_in_service of the on: runs "
                    "(default: the hub's own default)")
    ap.add_argument("--retry", type=int, default=None, help="[hub] busy_retry_max_seconds of the on: runs "
                    "(default: the hub's own default)")
    ap.add_argument("--client-procs", type=int, default=4, help="processes the simulated nodes run in")
    ap.add_argument("--runs", default="off:1,on:1,on:2",
                    help="admission control off/on, worker count and (on:W:LIMIT) its own --limit, of each run, "
                         "in this order")
    ap.add_argument("--baseline-src", default=None, help="an older source tree whose hub runs first, for before/after")
    args = ap.parse_args()
    from edge.core.config import SCHEMA
    from sync_fixtures import Postgres

    hub_keys = SCHEMA["hub"]
    args.limit = hub_keys["uploads_in_service"].default if args.limit is None else args.limit
    args.retry = hub_keys["busy_retry_max_seconds"].default if args.retry is None else args.retry
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    pg = Postgres().start()
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ce-bench-hub-") as t:
            os.chmod(t, 0o755)
            plan = [(x.split(":") + [""])[:3] for x in args.runs.split(",")]
            runs = [(mode, int(w), int(lim or args.limit) if mode == "on" else 0, src) for mode, w, lim in plan
                    for src in ([args.baseline_src] if args.baseline_src else []) + [None]]
            for mode, w, limit, src in runs:
                r = run(pg, base, Path(t), w, limit, args, src)
                results.setdefault((mode, w, src), r)       # the summary compares the first of each
                control = f"admission control {'on' if limit else 'off'}" + (
                    f" ({limit} uploads in service per worker, Retry-After at most {args.retry} s)"
                    if limit else "")
                print(f"{'baseline' if src else 'this tree'}, {control}: {os.getloadavg()[0]:.1f} load; "
                      f"{w} worker(s), {args.nodes} nodes at once x (hello + {args.batches} batches of {args.records}):"
                      f" served p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s (goal <= {P95_GOAL:.0f} s), max "
                      f"{r['max']:.2f} s (client timeout {CLIENT_TIMEOUT:.0f} s); {r['busy']}/{r['requests']} "
                      f"answers \"busy\" ({r['shed_share']:.0%} shed), {r['failed']} failed; {r['stored']} records "
                      f"in {r['seconds']:.1f} s = {r['rate']:.0f} records/s [machine-bound]; hub CPU "
                      f"{r['cpu_per_1000']:.2f} s per 1,000 records, {r['cpu_ms']:.1f} ms/request; held "
                      f"{r['held']} ({r['unique']} distinct) of {r['want']}, every receipt all accepted: "
                      f"{r['all_accepted']}", flush=True)
    finally:
        pg.stop()
    for src in {s for *_, s in results}:
        tag = " (baseline)" if src else ""
        off, on1, on2 = (results.get(k + (src,)) for k in (("off", 1), ("on", 1), ("on", 2)))
        if off and on1:
            print(f"admission control{tag}, one worker: served p95 {off['p95']:.2f} -> {on1['p95']:.2f} s "
                  f"(goal <= {P95_GOAL:.0f} s), max {off['max']:.2f} -> {on1['max']:.2f} s, records/s "
                  f"{on1['rate'] / off['rate']:.2f}x without it [machine-bound], {on1['shed_share']:.0%} of answers "
                  f"\"busy\"")
        if on1 and on2:
            print(f"scale-out{tag}: hub CPU per 1,000 records {on1['cpu_per_1000']:.2f} s (1 worker) vs "
                  f"{on2['cpu_per_1000']:.2f} s (2 workers) = {on2['cpu_per_1000'] / on1['cpu_per_1000']:.2f}x "
                  f"(1.00x: two workers scale on a machine with the cores); records/s two over one "
                  f"{on2['rate'] / on1['rate']:.2f}x (goal >= {SCALE_GOAL}x) [machine-bound: "
                  f"{os.cpu_count()} cores shared by load generator, workers and PostgreSQL]")


if __name__ == "__main__":
    main()
