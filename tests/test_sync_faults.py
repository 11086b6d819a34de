"""Exactly once over a link that keeps breaking: a fault-injecting proxy between node and hub,
and a node process SIGKILLed mid-sync; on the hub on SQLite and on PostgreSQL."""
from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

from conftest import clinic_edge
from edge.core import config as config_mod
from edge.core.node import Node
from sync.client import state
from sync.client.controller import Cycle
from sync_fixtures import (FaultProxy, add_records, enroll, hub, hub_database, hub_records,  # noqa: F401
                           node_records, sync_env)


def _node(env: dict[str, str]) -> Node:
    return Node(config_mod.load(env=env))


def test_a_link_that_drops_after_every_exchange_is_still_used_to_the_end(env, node, hub):
    """Issue 17: the failure count starts again after every exchange that succeeds, so a link that
    answers once and then drops, over and over, carries the whole backlog in one cycle, each retry
    after the first (shortest) delay, instead of giving up after `attempts` drops in total with
    ever longer waits."""
    enroll(env, hub)
    proxy = FaultProxy(hub.port, hub_data=hub.data, pattern=("pass", "pass", "503")).start()
    cut = sync_env(env, hub_url=proxy.url, attempts=3, batch_records=2, batch_max_records=2,
                   chunk_bytes=65536, backoff_base_ms=20)
    waits: list[float] = []
    try:
        flaky = _node(cut)
        add_records(flaky, 12)
        result = Cycle(flaky, state.identity(flaky), sleep=waits.append, rand=lambda: 1.0).run()
        flaky.close()
    finally:
        proxy.stop()
    assert result.error is None and result.ok
    assert result.acked == 12
    assert proxy.counts["503"] == result.failures >= 6     # hello and six batches (receipts fold the pull)
    assert waits == [0.02] * result.failures     # never longer than the first retry delay
    assert sorted(hub_records(hub)) == sorted(node_records(node))


def test_many_rounds_through_a_faulty_link_deliver_every_record_exactly_once(env, node, hub):
    enroll(env, hub)
    proxy = FaultProxy(hub.port, hub_data=hub.data, seed=4, stall_seconds=1.2).start()
    faulty = sync_env(env, hub_url=proxy.url, timeout_seconds=1, attempts=3, batch_records=8, chunk_bytes=512)
    rng = random.Random(7)
    total, outcomes = 0, Counter()
    try:
        flaky = _node(faulty)
        for round_no in range(32):
            n = rng.randint(0, 14)
            add_records(flaky, n, start=total, rng=rng)
            total += n
            result = Cycle(flaky, state.identity(flaky), sleep=lambda s: time.sleep(min(s, 0.05))).run()
            outcomes[result.ok] += 1
        flaky.close()
    finally:
        proxy.stop()
    assert sum(proxy.counts.get(f, 0) for f in proxy.counts if f != "pass") > 50, proxy.counts
    assert all(proxy.counts.get(f) for f in ("drop_after_request", "truncate_response", "stall", "503"))
    assert outcomes[False] > 5          # the link really did break cycles
    # a clean link drains what is left
    r = clinic_edge(sync_env(env), "sync", "--once", check=False)
    assert r.returncode == 0, r.stderr
    held = hub_records(hub)
    assert len(held) == len(set(held)), "a record is stored twice"
    assert sorted(held) == sorted(node_records(node))
    assert len(held) == total
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL") == 0
    # no resent batch was stored twice either
    with hub.store().engine.connect() as c:
        import sqlalchemy as sa

        stored = c.execute(sa.text("SELECT sum(records) FROM hub_batches")).scalar()
    assert stored == total


def test_sync_process_killed_mid_sync_many_times_loses_and_duplicates_nothing(env, node, hub):
    enroll(env, hub)
    add_records(node, 300)
    proxy = FaultProxy(hub.port, hub_data=hub.data, faults=["pass", "pass", "drop_after_request", "truncate_response"],
                       seed=11, delay=0.04).start()
    daemon_env = sync_env(env, hub_url=proxy.url, interval_seconds=1, batch_records=10, batch_max_records=10,
                          chunk_bytes=700,
                          attempts=50)
    rng = random.Random(3)
    kills = mid_sync = 0
    try:
        for round_no in range(7):
            add_records(node, 20, start=300 + 20 * round_no, rng=rng)
            proc = subprocess.Popen([sys.executable, "-m", "edge", "sync"], env=daemon_env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.9, 1.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(10)
            mid_sync += node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL") > 0
    finally:
        proxy.stop()
    assert kills == 7 and mid_sync >= 5, "the kills should land mid-sync"
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NOT NULL") > 0
    r = clinic_edge(sync_env(env), "sync", "--once", check=False)
    assert r.returncode == 0, r.stderr
    held = hub_records(hub)
    assert len(held) == len(set(held)) == 440
    assert sorted(held) == sorted(node_records(node))
    assert node.store.integrity_check() == ["ok"]


def test_an_interrupted_large_batch_resumes_at_the_hubs_offset_on_another_worker(env, node, hub, tmp_path):
    """The upload starts on one hub worker and finishes on a second one sharing the database:
    workers keep no state of their own (as behind a load balancer)."""
    enroll(env, hub)
    add_records(node, 400)
    proxy = FaultProxy(hub.port, hub_data=hub.data, faults=["pass"]).start()
    small_chunks = sync_env(env, hub_url=proxy.url, batch_records=400, chunk_bytes=1024, attempts=1)
    pi = _node(small_chunks)
    try:
        cycle = Cycle(pi, state.identity(pi))
        cycle.chunk = 1024
        real_call = cycle.client.call
        calls = []

        def breaking_call(method, path, body=b"", **kw):   # the link dies after three chunks went through
            calls.append(path)
            if method == "PUT" and len([c for c in calls if "?o=" in c]) > 3:
                proxy.mode = "drop_before_request"
            return real_call(method, path, body, **kw)

        cycle.client.call = breaking_call
        assert not cycle.run().ok
    finally:
        proxy.stop()
    envelope = pi.store.scalar("SELECT length(envelope) FROM sync_batches WHERE state = 'pending'")
    assert envelope > 4000
    from sync_fixtures import Hub

    (tmp_path / "worker2" / "hub").mkdir(parents=True)
    key = (hub.data / "hub" / "hub.key").read_bytes()          # workers share the hub's key file
    (tmp_path / "worker2" / "hub" / "hub.key").write_bytes(key)
    shutil.copytree(hub.data / "hub" / "ca", tmp_path / "worker2" / "hub" / "ca")   # ... and the county CA
    worker2 = Hub(env, tmp_path / "worker2", hub.database).start()
    resumed = Cycle(pi, state.identity(pi))
    resumed.client.port = worker2.port
    again, real = [], resumed.client.call
    resumed.client.call = lambda method, path, body=b"", **kw: again.append((method, path, len(body))) or real(
        method, path, body, **kw)
    result = resumed.run()
    assert result.ok, result.error
    # it sent the rest of the batch, from where the hub stopped, not the whole of it again (counted
    # in envelope bytes: the cycle's wire bytes also hold a full TLS handshake with the new worker)
    puts = [(p, n) for m, p, n in again if m == "PUT"]
    assert any(m == "GET" and "?t=" in p for m, p, _ in again)   # asked the hub where it stopped
    first = int(puts[0][0].split("?o=")[1].split("&")[0])
    assert first >= 3 * 1024, puts[0]
    assert sum(n for _, n in puts) == envelope - first
    worker2.stop()
    assert sorted(hub_records(hub)) == sorted(node_records(node))
    pi.close()


def test_sync_now_request_file_starts_a_cycle_in_the_daemon(env, node, hub):
    enroll(env, hub)
    daemon_env = sync_env(env, interval_seconds=3600)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "sync"], env=daemon_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_for

        wait_for(lambda: (node.read_status("sync") or {}).get("last_cycle"), 20, message="first cycle")
        add_records(node, 12)
        (node.data_dir / "run" / "sync-now").touch()     # what the web UI's "sync now" button does
        wait_for(lambda: len(hub_records(hub)) == 12, 15, message="records after sync now")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_sync_now_while_the_hub_asked_for_a_later_try_runs_once_that_time_has_come(env, node, hub):
    """Issue 17.5: "sync now" pressed while the hub's Retry-After runs is kept, not sent into the busy hub."""
    from datetime import datetime, timedelta, timezone

    from edge.core.reading import utc_iso

    enroll(env, hub)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "sync"], env=sync_env(env, interval_seconds=3600),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_for

        wait_for(lambda: (node.read_status("sync") or {}).get("last_cycle"), 20, message="first cycle")
        assert node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NOT NULL") == 0
        add_records(node, 4)
        until = datetime.now(timezone.utc) + timedelta(seconds=6)
        state.put_many(node.store, {"busy_until": utc_iso(until)}, datetime.now(timezone.utc))
        (node.data_dir / "run" / "sync-now").touch()
        wait_for(lambda: len(hub_records(hub)) == 4, 30, message="records after the hub's later try")
        wait_for(lambda: not node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL"), 10,
                 message="the receipt settled")
        acked = node.store.scalar("SELECT min(acked_at) FROM outbox WHERE acked_at IS NOT NULL")
        assert acked >= utc_iso(until), (acked, until)          # not one sent before the hub's time
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_after_a_cycle_ends_on_a_broken_link_the_daemon_tries_again_soon(env, node, hub):
    """Issue 17: a cycle that ended on a dropped link is followed by another within the backoff
    (here at most a second or two), not by the next backlog check an `interval_seconds` later."""
    enroll(env, hub)
    proxy = FaultProxy(hub.port, hub_data=hub.data, mode="503").start()
    daemon_env = sync_env(env, hub_url=proxy.url, interval_seconds=3600, attempts=2, backoff_base_ms=200,
                          backoff_cap_ms=1000)
    add_records(node, 5)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "sync"], env=daemon_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_for

        wait_for(lambda: ((node.read_status("sync") or {}).get("last_cycle") or {}).get("link_failed"), 20,
                 message="a cycle that ended on the broken link")
        proxy.mode = "pass"                              # the link comes back; nobody presses "sync now"
        wait_for(lambda: len(hub_records(hub)) == 5, 20, message="records after the link came back")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proxy.stop()
