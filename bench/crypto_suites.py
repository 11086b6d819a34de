"""Signature and verification time per sync batch for each crypto suite (docs/crypto-suites.md).

A sync cycle signs and verifies twice per exchange: the node signs its request and the hub verifies
it, the hub signs its answer and the node verifies it. Prints, per suite, the time to sign and to
verify a small answer and a batch of N readings (each reading a JSON record of about 300 bytes), the
ratio to ed25519 measured in the same run (this machine is shared and noisy: the ratio is the figure),
and the cryptographic cost of one upload exchange. Then the same through the sync path itself
(sync/protocol.py): the envelope's signature and the hub's check of it, the request signature and
its check, the receipt's signature and the node's check, per batch of N readings.

usage: .venv/bin/python bench/crypto_suites.py [--readings 500] [--rounds 50]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.core import suites  # noqa: E402
from sync import protocol, signing  # noqa: E402


def batch(readings: int) -> bytes:
    rows = [{"kind": "reading", "id": os.urandom(16).hex(), "version": 1,
             "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": 120 + i % 40,
                         "effective_time": "2026-12-03T08:00:00Z", "device": "bp-1", "resident": "r-17"}}
            for i in range(readings)]
    return json.dumps({"records": rows}).encode()


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def measure(suite, data: bytes, rounds: int) -> tuple[float, float]:
    key = suite.generate()
    pub = key.public_key()
    sig = key.sign(data)
    return timed(lambda: key.sign(data), rounds), timed(lambda: pub.verify(sig, data), rounds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=50)
    a = ap.parse_args()
    small, big = b'{"cursor":"17"}', batch(a.readings)
    print(f"batch of {a.readings} readings: {len(big):,} bytes; answer: {len(small)} bytes; "
          f"median of {a.rounds} rounds, ms")
    figures = {}
    for suite in (suites.ED25519, suites.SM):
        figures[suite.name] = measure(suite, small, a.rounds) + measure(suite, big, a.rounds)
    base = figures["ed25519"]
    for name, (s_sign, s_ver, b_sign, b_ver) in figures.items():
        exchange = b_sign + b_ver + s_sign + s_ver
        ratio = exchange / (base[2] + base[3] + base[0] + base[1])
        print(f"{name:8} answer sign {s_sign:7.3f} verify {s_ver:7.3f} | batch sign {b_sign:7.3f} "
              f"verify {b_ver:7.3f} | one upload exchange {exchange:7.3f} ms ({ratio:.1f}x ed25519)")
    print_sync_path(a.readings, a.rounds)


def sync_path(name: str, readings: int, rounds: int) -> dict[str, float]:
    """ms per batch on the sync path: what the node signs and the hub checks, and back."""
    node, hub = signing.new_key(name), signing.new_key(name)
    node_pub, hub_pub = node.public_key(), hub.public_key()
    recs = [{"kind": "reading", "id": f"r-{i}", "version": 1,
             "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": 120 + i % 40,
                         "effective_time": "2026-12-03T08:00:00.000Z", "device": "bp-1"}} for i in range(readings)]
    head = {"node": "clinic-a", "batch": "b" * 32, "from": 1, "to": readings, "n": readings}
    env = protocol.seal(node, head, recs)
    signed = protocol.open_envelope(env).signed_bytes()
    req = protocol.request_bytes("PUT", "/v1/uploads/x", "clinic-a", "n" * 24, "2026-12-03T08:00:00.000Z", env, name)
    auth = signing.sign(node, req)
    doc = {"type": "receipt", "node": "clinic-a", "batch": "b" * 32, "from": 1, "to": readings, "records": readings,
           "stored": readings, "accepted": readings, "rejected": [], "at": "2026-12-03T08:00:00.000Z"}
    receipt = protocol.sign_document(hub, doc)
    return {
        "envelope sign": timed(lambda: signing.sign(node, signed), rounds),
        "envelope verify": timed(lambda: protocol.open_envelope(env).verify(node_pub), rounds),
        "request sign": timed(lambda: signing.sign(node, protocol.request_bytes(
            "PUT", "/v1/uploads/x", "clinic-a", "n" * 24, "2026-12-03T08:00:00.000Z", env, name)), rounds),
        "request verify": timed(lambda: signing.verify(node_pub, auth, protocol.request_bytes(
            "PUT", "/v1/uploads/x", "clinic-a", "n" * 24, "2026-12-03T08:00:00.000Z", env, name)), rounds),
        "receipt sign": timed(lambda: protocol.sign_document(hub, doc), rounds),
        "receipt verify": timed(lambda: protocol.verify_document(hub_pub, receipt), rounds),
    }


def print_sync_path(readings: int, rounds: int) -> None:
    print(f"\nsync path per batch of {readings} readings (sync/protocol.py), median of {rounds} rounds, ms")
    figures = {name: sync_path(name, readings, rounds) for name in ("ed25519", "sm")}
    base = sum(figures["ed25519"].values())
    for name, f in figures.items():
        total = sum(f.values())
        print(f"{name:8} " + " | ".join(f"{k} {v:6.3f}" for k, v in f.items())
              + f" | total {total:6.3f} ms ({total / base:.1f}x ed25519)")


if __name__ == "__main__":
    main()
