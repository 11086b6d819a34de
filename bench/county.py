"""The county page for a county of many clinics (sync/hub/county.py, docs/county.md): the time of
one view of /county, served in process by the hub's own app on a hub database of N clinics with
M monthly and Q quarterly reports each (and a corrected report for every tenth clinic).

    .venv/bin/python bench/county.py [--clinics 300] [--months 24] [--quarters 8] [--views 10]
                                     [--postgres]

Prints, in one run, the median view time when every view reads and parses every report (as
before the reports were kept, issue stops 25-26: the parsed reports are forgotten before each
view) beside the median with them kept, their ratio and the goal, and checks that both pages are
the same. With --postgres the hub runs on a PostgreSQL server started as the tests start it.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/sync.py would shadow the sync package when this runs from bench/
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

GOAL_S = 0.5            # this bench's own goal (none was set): a county page within half a second


def fill(store, clinics: int, months: int, quarters: int) -> int:
    import hashlib
    import json

    from county_support import T0, report_payload
    from edge.reports.population import month, quarter
    from sync.hub import county

    rows = []
    for i in range(clinics):
        node = f"clinic-{i:03d}"
        store.add_node(node, f"code-{node}", now=T0, ttl=timedelta(hours=1))
        county.set_place(store, node, f"乡镇{i % 12:02d}", f"第{i}村卫生室", actor="it", now=T0)
        periods = [month(2024 + m // 12, m % 12 + 1) for m in range(months)]
        periods += [quarter(2024 + q // 4, q % 4 + 1) for q in range(quarters)]
        for n, period in enumerate(periods):
            managed = 20 + (i * 7 + n) % 40
            for v, (std, ctl) in enumerate([(managed // 2, managed // 3)] * (1 + (i % 10 == 0))):
                rid = f"rep-{node}-{period.label}-{v}"
                text = json.dumps(report_payload(period, rid, (managed, std, ctl), (managed // 4, 1, 0)),
                                  ensure_ascii=False)
                at = (T0 + timedelta(minutes=n, seconds=v)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                rows.append({"node": node, "kind": "report", "record_id": rid, "version": 1, "payload": text,
                             "digest": hashlib.sha256(text.encode()).hexdigest(), "batch_id": "b-" + rid,
                             "day": at[:10], "received_at": at})
    for start in range(0, len(rows), 2000):
        with store.begin() as c:
            store.insert_records(c, rows[start:start + 2000])
    return len(rows)


def logged_in(app, store):
    from datetime import datetime, timezone

    from sync.hub import accounts

    accounts.add(store, "officer", "county-pass-123", role="county", now=datetime.now(timezone.utc))
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": "officer", "password": "county-pass-123", "csrf_token": token})
    assert r.status_code in (200, 302, 303), r.status_code
    return client


def views(client, n: int, forget) -> tuple[float, str]:
    times, page = [], ""
    for _ in range(n):
        if forget:
            forget()
        t = time.perf_counter()
        r = client.get("/county?kind=month")
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.status_code
        page = re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token"', r.text)   # timestamped
    return statistics.median(times), page


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clinics", type=int, default=300)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--quarters", type=int, default=8)
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--postgres", action="store_true")
    a = ap.parse_args()

    from sync import protocol
    from sync.hub import county
    from sync.hub.app import create_app
    from sync.hub.service import Hub
    from sync.hub.storage import HubStore

    with tempfile.TemporaryDirectory(prefix="bench-county-") as tmp:
        pg = None
        if a.postgres:
            from sync_fixtures import Postgres
            pg = Postgres().start()
            url = pg.new_database()
        else:
            url = f"sqlite:///{Path(tmp) / 'hub.db'}"
        store = HubStore(url)
        try:
            n = fill(store, a.clinics, a.months, a.quarters)
            app = create_app(Hub(store, protocol.new_key()))
            app.config["WTF_CSRF_SSL_STRICT"] = False
            client = logged_in(app, store)
            forget = getattr(county, "forget_reports", None)
            client.get("/county?kind=month")                       # templates compiled, pool warm
            cold, cold_page = views(client, a.views, forget or (lambda: None))
            kept, kept_page = views(client, a.views, None)
            if cold_page != kept_page:
                import difflib
                diff = difflib.unified_diff(cold_page.splitlines(), kept_page.splitlines(), lineterm="", n=0)
                raise SystemExit("the page differs with the reports kept:\n" + "\n".join(list(diff)[:20]))
            db = "PostgreSQL" if a.postgres else "SQLite"
            print(f"county page, {a.clinics} clinics, {n} reports ({db}), median of {a.views} views:")
            print(f"  every report parsed on each view (before): {cold * 1000:8.1f} ms")
            print(f"  reports kept until a new one arrives:      {kept * 1000:8.1f} ms"
                  + ("" if forget else "   (this tree keeps nothing: both are the same path)"))
            print(f"  ratio {cold / kept:.1f}x; goal: a view under {GOAL_S * 1000:.0f} ms "
                  f"({'met' if kept < GOAL_S else 'not met'})")
        finally:
            store.engine.dispose()
            if pg:
                pg.stop()


if __name__ == "__main__":
    main()
