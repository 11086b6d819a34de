"""The hub's CPU per upload with the full receipt signed only for /v1 nodes (issue 17.4 follow-up).

    .venv/bin/python bench/hub_receipt_cpu.py [--batches 400] [--records 50] [--suite ed25519|sm]
                                              [--baseline-src DIR]

In-process, on a SQLite hub database in a temporary directory: seals `--batches` envelopes of
`--records` readings each for one enrolled node, then times (CPU seconds of this process,
time.process_time) what the hub does for each compact upload (/v2/u/): Hub.accept_batch as
node_api calls it for a whole batch, and the one signature over the compact answer. Then the
same for an old node's /v1/uploads/ answer (the full receipt, Hub.full_receipt). With
`--baseline-src DIR` (an older tree: `mkdir /tmp/old && git archive COMMIT | tar -x -C /tmp/old`)
the compact upload is measured first with that tree's hub, in a process of its own, then with this
tree's; the figures of one run are comparable with each other (the machine is shared).
Goal: the compact upload costs the hub no signature beyond its answer's.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/sync.py would shadow the sync package when this runs from bench/
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def measure(batches: int, records: int, suite: str, with_v1: bool) -> dict:
    from sync import protocol, signing
    from sync.hub.service import Hub
    from sync.hub.storage import HubStore

    now = datetime.now(timezone.utc)
    node_key = signing.new_key(suite)
    hub_key = signing.new_key(signing.DEFAULT_SUITE)
    sm_key = signing.new_key(suite) if suite != signing.DEFAULT_SUITE else None
    out = {}
    for form in ("v2", "v1") if with_v1 else ("v2",):
        with tempfile.TemporaryDirectory() as tmp:
            store = HubStore(f"sqlite:///{tmp}/hub.db")
            hub = Hub(store, hub_key, sm_key=sm_key)
            store.add_node("clinic-a", "CODE", now=now, ttl=timedelta(hours=1))
            pub = signing.public_text(node_key)
            store.redeem("CODE", pub, now=now)
            envs = []
            for b in range(batches):
                recs = [{"kind": "reading", "id": f"r-{b}-{i}", "version": 1,
                         "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": 120.0 + i,
                                     "effective_time": "2026-12-04T08:00:00.000Z", "device_id": "bp-1"}}
                        for i in range(records)]
                header = {"node": "clinic-a", "batch": f"b-{b}", "from": b * records + 1, "to": (b + 1) * records,
                          "n": records, "at": "2026-12-04T08:00:00.000Z"}
                envs.append((header["batch"], protocol.seal(node_key, header, recs)))
            began = time.process_time()
            for batch, raw in envs:
                receipt = hub.accept_batch(raw, via="upload", now=now, sender="clinic-a", sender_key=pub,
                                           unstored=True, whole=True)
                if form == "v1":
                    body = json.dumps({"receipt": hub.full_receipt(receipt)}).encode()
                    hub.sign_response("n" * 16, body, suite)
                else:
                    body = json.dumps({"r": protocol.compact_receipt(receipt), "d": 0}).encode()
                    hub.sign_receipt_answer("clinic-a", batch, "n" * 16, body, suite)
            out[form] = (time.process_time() - began) / batches * 1000
            store.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--suite", default="ed25519")
    ap.add_argument("--baseline-src", default=None)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # one run, for the parent
    ap.add_argument("--v1", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.json:
        print(json.dumps(measure(args.batches, args.records, args.suite, args.v1)))
        return
    runs = ([("before", args.baseline_src, False)] if args.baseline_src else []) + [("after", str(ROOT), True)]
    print(f"{args.batches} compact uploads of {args.records} readings, suite {args.suite}; "
          "hub CPU ms per upload (process_time)")
    for label, src, v1 in runs:
        cmd = [sys.executable, __file__, "--json", "--batches", str(args.batches), "--records", str(args.records),
               "--suite", args.suite] + (["--v1"] if v1 else [])
        env = {"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}
        got = json.loads(subprocess.run(cmd, env=env, cwd=src, check=True, capture_output=True,
                                        text=True).stdout.splitlines()[-1])
        line = f"  {label:6} /v2/u/ {got['v2']:6.2f} ms"
        if "v1" in got:
            line += f"   (/v1/uploads/ with the full receipt signed: {got['v1']:6.2f} ms)"
        print(line)
    print("  goal: /v2/u/ after < before (one signature less per upload)")


if __name__ == "__main__":
    main()
