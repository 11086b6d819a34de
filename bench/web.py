"""Benchmark: resident search and the resident page with 5,000 residents and three years of readings.

    .venv/bin/python bench/web.py [--residents 5000] [--years 3] [--requests 300] [--data DIR] [--suite sm]

Seeds a fresh store (residents through edge.core.residents.create, so search keys, outbox and audit
are real; readings inserted with plain SQL in bulk, as ingest() would store them, to keep seeding
short), logs in through the real login form and times requests through the Flask app (the WSGI
app waitress serves), or with --http over real HTTP to waitress on loopback. Prints p50/p95/max
in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.core import accounts, config as config_mod, devices, idnumber, residents  # noqa: E402
from edge.core.node import Node  # noqa: E402
from edge.core.reading import utc_iso  # noqa: E402
from edge.web import create_app  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅文辉春林海燕"
NOW = datetime.now(timezone.utc)


def id_number(rng: random.Random, born: datetime, male: bool) -> str:
    seq = rng.randrange(0, 50) * 2 + (1 if male else 0)
    first17 = f"110105{born:%Y%m%d}{rng.randrange(0, 10)}{seq:02d}"
    return first17 + idnumber.check_char(first17)


def seed(node: Node, n: int, years: int, rng: random.Random) -> list[dict]:
    store = node.store
    devices.add(store, "bench-bp", kind="bp", now=NOW)
    devices.add(store, "bench-scale", kind="scale", now=NOW)
    devices.add(store, "bench-glu", kind="glucose", now=NOW)
    people = []
    t0 = time.perf_counter()
    for i in range(n):
        male = rng.random() < 0.5
        born = datetime(1935, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60))
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        data = {"name": name, "id_number": id_number(rng, born, male), "phone": f"13{rng.randrange(10**9):09d}",
                "htn": rng.random() < 0.4, "t2dm": rng.random() < 0.2}
        try:
            rid = residents.create(store, data, division_code="110105001001", now=NOW, actor="bench")
        except residents.FormInvalid:
            continue                      # the rare random duplicate ID number
        people.append({"id": rid, **data})
    t1 = time.perf_counter()
    rows = []
    for p in people:
        for month in range(12 * years):
            t = utc_iso(NOW - timedelta(days=30 * month + 1, minutes=rng.randrange(600)))
            sys_, dia = rng.gauss(140, 15), rng.gauss(85, 10)
            rows += [(p["id"], "bench-bp", "8480-6", round(sys_), "mm[Hg]", t),
                     (p["id"], "bench-bp", "8462-4", round(dia), "mm[Hg]", t),
                     (p["id"], "bench-bp", "8867-4", round(rng.gauss(75, 8)), "/min", t),
                     (p["id"], "bench-scale", "29463-7", round(rng.gauss(65, 8), 1), "kg", t)]
            if p["t2dm"]:
                rows.append((p["id"], "bench-glu", "2339-0", round(rng.gauss(7.2, 1.5), 1), "mmol/L", t))
    for p in rng.sample(people, min(100, len(people))):     # a busy day: 100 patients measured today
        t = utc_iso(NOW - timedelta(minutes=rng.randrange(480)))
        rows += [(p["id"], "bench-bp", "8480-6", 135, "mm[Hg]", t), (p["id"], "bench-bp", "8462-4", 85, "mm[Hg]", t)]
    with store.atomic() as conn:
        conn.executemany(
            "INSERT INTO readings (id, resident_id, device_id, code, value, unit, value_as_sent, unit_as_sent,"
            " device_time, receive_time, effective_time, boot_id, monotonic, transport, raw, status)"
            " VALUES (lower(hex(randomblob(16))), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'bench', 0, 'mqtt', '', 'valid')",
            [(r, d, c, v, u, v, u, t, t, t) for r, d, c, v, u, t in rows])
    print(f"seeded {len(people)} residents in {t1 - t0:.1f} s and {len(rows)} readings in "
          f"{time.perf_counter() - t1:.1f} s", flush=True)
    return people


def queries(people: list[dict], rng: random.Random, k: int) -> list[str]:
    from edge.core.resident_search import initials

    out = []
    for _ in range(k):
        p = rng.choice(people)
        kind = rng.randrange(4)
        out.append([initials(p["name"])[0], p["name"][:1], p["id_number"][-4:], p["phone"][-4:]][kind])
    return out


def timed(client, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        t = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return times


class HttpClient:
    """The same GETs over real HTTP to waitress (keep-alive), to include the server in the figure."""

    def __init__(self, app, cookie: str):
        import http.client
        import threading

        import waitress

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=self.server.run, daemon=True).start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.server.effective_port, timeout=30)
        self.cookie = cookie

    def get(self, path: str):
        from urllib.parse import quote

        self.conn.request("GET", quote(path, safe="/?=&"), headers={"Cookie": self.cookie})
        r = self.conn.getresponse()
        r.read()
        r.status_code = r.status
        return r


def report(name: str, ms: list[float]) -> dict:
    ms = sorted(ms)
    out = {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[int(len(ms) * 0.95) - 1], 1),
           "max_ms": round(ms[-1], 1), "n": len(ms)}
    print(f"{name:<28} p50 {out['p50_ms']:7.1f} ms   p95 {out['p95_ms']:7.1f} ms   max {out['max_ms']:7.1f} ms"
          f"   (n={out['n']})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=5000)
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--data", default=None, help="data directory (default: a temporary one)")
    ap.add_argument("--no-followups", action="store_true", help="skip the follow-up figures (issue 5)")
    ap.add_argument("--http", action="store_true", help="time real HTTP requests to waitress, not the WSGI app")
    ap.add_argument("--suite", choices=("ed25519", "sm"), default="ed25519",
                    help="[crypto] suite: sm encrypts ID numbers and phones at rest (docs/field-encryption.md)")
    args = ap.parse_args()
    rng = random.Random(42)
    data = Path(args.data or tempfile.mkdtemp(prefix="bench-web-"))
    node = Node(config_mod.load(env={"CLINIC_EDGE_DATA": str(data), "CLINIC_EDGE_CRYPTO_SUITE": args.suite}))
    print(f"suite {args.suite}, ID numbers and phones sealed at rest: {bool(node.store.fields)}")
    people = seed(node, args.residents, args.years, rng)
    accounts.add(node.store, "bench", "bench-password", now=NOW)
    node.store.conn.execute("ANALYZE")
    app = create_app(node=node)
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "bench", "password": "bench-password", "csrf_token": token})
    if args.http:
        cookie = client.get_cookie("clinic_edge_session")
        client = HttpClient(app, f"clinic_edge_session={cookie.value}")
        print(f"over HTTP: waitress on port {client.server.effective_port}")
    results = {
        "search (JSON API)": report("search /api/v1/residents", timed(
            client, [f"/api/v1/residents?q={q}" for q in queries(people, rng, args.requests)])),
        "search (page)": report("search page /?q=", timed(
            client, [f"/?q={q}" for q in queries(people, rng, args.requests)])),
        "workbench home": report("workbench home (today's list)", timed(client, ["/"] * args.requests)),
        "resident page": report("resident page", timed(
            client, [f"/residents/{rng.choice(people)['id']}" for _ in range(args.requests)])),
        "live poll": report("live poll (no new rows)", timed(
            client, [f"/api/v1/residents/{p['id']}/readings?after=999999999"
                     for p in rng.sample(people, min(args.requests, len(people)))])),
    }
    if not args.no_followups:   # issue 5: follow-up form, worklist, monthly report (bench/web_followup.py)
        from web_followup import extend
        results["follow-ups"] = extend(node, people, args.years, rng)
    print(json.dumps({"residents": len(people), "years": args.years, **results}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
