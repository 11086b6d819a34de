"""Admission control (issue 17.5, docs/hub.md "Admission control"): the real hub process, over real
TLS on loopback, on PostgreSQL, limited to one upload in service. An upload blocked on a lock the
test holds in the database keeps that one place, so no timing is involved: the next upload is
turned away with 503 + Retry-After until the first is finished, and the node's sync cycle waits the Retry-After (its injected sleep), counts no
failure, caps an absurd value and says "hub busy, next try at ..." meanwhile."""
from __future__ import annotations

import json
import secrets
import threading
import urllib.error
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from conftest import clinic_edge, wait_for
from edge.core import config as config_mod
from edge.core.node import Node
from sync import protocol, signing
from sync.client import state, status
from sync.client.controller import Cycle
from sync.client.daemon import hub_busy, next_wait
from sync.client.errors import HubBusy
from sync.client.transport import HubClient
from sync_fixtures import FaultProxy, Hub, add_records, hub, enroll, hub_database, hub_records, node_records, sync_env  # noqa: F401


@pytest.fixture
def busy_hub(postgres, tmp_path, env):
    """A hub on PostgreSQL that serves one upload at a time and gives a Retry-After of at most 7 s."""
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, postgres.new_database(), uploads_in_service="1", busy_retry_max_seconds="7").start()
    yield h
    h.stop()


class HeldUpload:
    """A signed upload the hub holds in service until `finish()`: the test holds an exclusive lock on
    the table of batches, which an upload reads first and a hello, a pull or /healthz never touch."""

    def __init__(self, hub: Hub):
        from sync.hub.storage import HubStore

        client, key = a_node(hub, "clinic-held")
        self.store = HubStore(hub.database, pool_size=1)
        self.conn = self.store.engine.connect()
        self.tx = self.conn.begin()
        self.conn.execute(sa.text("LOCK TABLE hub_batches IN ACCESS EXCLUSIVE MODE"))
        self.answer: list[int] = []
        self.thread = threading.Thread(target=lambda: self.answer.append(upload(client, key, "clinic-held", "held")[0]))
        self.thread.start()
        wait_for(lambda: health(hub)[1]["admission"]["uploads_in_service"] == 1, 20,
                 message="the held upload in service")

    def finish(self) -> int | None:
        """Let the held upload go on; its status once the hub has answered it."""
        if self.store is not None:
            self.tx.rollback()
            self.conn.close()
            self.store.engine.dispose()
            self.store = None
            self.thread.join(60)
        return self.answer[0] if self.answer else None


def health(hub: Hub) -> tuple[int, dict]:
    try:
        with hub.urlopen("/healthz") as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def a_node(hub: Hub, name: str = "clinic-a"):
    key = signing.new_key()
    store = hub.store()
    now = datetime.now(timezone.utc)
    store.add_node(name, f"code-{name}", now=now, ttl=timedelta(hours=1))
    store.redeem(f"code-{name}", signing.public_text(key), now=now)
    hub_pub = signing.public_text(signing.load_key(hub.data / "hub" / "hub.key"))
    return HubClient(hub.url, node=name, key=key, hub_pubkey=hub_pub, timeout=30, context=hub.ssl_context()), key


UPLOADS = {"v2": "/v2/u/{batch}?o=0&t={total}", "v1": "/v1/uploads/{batch}?offset=0&total={total}"}


def upload(client: HubClient, key, name: str, batch: str, path: str = "v2") -> tuple[int, dict, dict]:
    """A signed one-record batch, through the client's raw request (its status and headers as sent),
    by the upload path of today's nodes (v2) or of nodes from before (v1)."""
    env = protocol.seal(key, {"node": name, "batch": batch, "from": 1, "to": 1, "n": 1,
                              "at": protocol.utc_now_iso(datetime.now(timezone.utc))},
                        [{"kind": "reading", "id": f"r-{batch}", "version": 1,
                          "payload": {"code": "8480-6", "unit": "mm[Hg]", "value": 120.0,
                                      "effective_time": "2026-12-01T08:00:00.000Z"}}])
    path = UPLOADS[path].format(batch=batch, total=len(env))
    headers = protocol.sign_request(key, "PUT", path, name, secrets.token_urlsafe(16), client.signing_time(), env)
    status_code, rh, data, _s, _g = client.raw("PUT", path, env, headers)
    return status_code, {k.lower(): v for k, v in rh.items()}, json.loads(data or b"{}")


def test_the_hub_turns_uploads_away_with_retry_after_once_its_limit_is_reached_and_serves_again_after(busy_hub):
    client, key = a_node(busy_hub)
    code, doc = health(busy_hub)
    assert code == 200 and doc["ok"] and doc["admission"]["shedding"] == "no"
    held = HeldUpload(busy_hub)
    try:
        # cheap requests are not shed: a hello is served while the one place is taken
        assert client.call("POST", "/v1/hello", b"{}").status == 200
        code, headers, body = upload(client, key, "clinic-a", "b1")
        assert code == 503 and "busy" in body["error"]
        assert 1 <= int(headers["retry-after"]) <= 7
        assert upload(client, key, "clinic-a", "b1", path="v1")[0] == 503      # a node from before too
        # health says so: every upload of the last minute turned away, none served
        code, doc = health(busy_hub)
        assert code == 503 and doc["ok"] is False
        assert doc["admission"]["shedding"] == "all" and doc["admission"]["shed_total"] == 2
    finally:
        assert held.finish() == 200
    code, headers, body = upload(client, key, "clinic-a", "b2")
    client.close()
    assert code == 200 and body["r"] == {"s": 1}        # the compact receipt: one record stored
    code, doc = health(busy_hub)
    assert code == 200 and doc["ok"] and doc["admission"]["shedding"] == "some"
    assert doc["admission"]["served_total"] == 2 and doc["admission"]["uploads_in_service"] == 0


def test_the_client_says_busy_with_the_retry_after_not_a_link_failure(busy_hub):
    client, key = a_node(busy_hub)
    held = HeldUpload(busy_hub)
    try:
        with pytest.raises(HubBusy) as busy:
            client.call("PUT", "/v1/uploads/b1?offset=0&total=3", b"abc")
    finally:
        held.finish()
        client.close()
    assert 1 <= busy.value.retry_after <= 7 and busy.value.status == 503


def test_a_sync_cycle_waits_the_retry_after_counts_no_failure_and_says_hub_busy(env, node, busy_hub):
    enroll(env, busy_hub)
    node.close()
    n = Node(config_mod.load(env=sync_env(env, attempts=2)))
    add_records(n, 6)
    held = HeldUpload(busy_hub)
    waits: list[float] = []
    seen: dict = {}

    def sleep(seconds: float) -> None:      # the cycle's injected sleep: look, then free the hub's place
        waits.append(seconds)
        seen["report"] = status.report(n)
        seen["doctor"] = status.findings(n, n.clock.now())
        seen["busy"] = hub_busy(n)
        seen["status"] = clinic_edge(env, "sync", "status").stdout
        held.finish()

    try:
        result = Cycle(n, state.identity(n), sleep=sleep, rand=lambda: 1.0).run()
    finally:
        if not waits:
            held.finish()
    assert result.ok and result.error is None
    assert result.busy == 1 and result.failures == 0 and result.busy_for is None
    assert len(waits) == 1 and 1 + 1 <= waits[0] <= 7 + 1     # the hub's Retry-After, and a second of jitter
    assert seen["busy"] is True and seen["report"]["hub_busy_until"]
    assert seen["report"]["last_error"] is None
    assert f"hub busy, next try at {seen['report']['hub_busy_until']}" in seen["status"]
    hub_line = [f for f in seen["doctor"] if f.check == "hub"][0]
    assert hub_line.level == "ok" and "hub busy, next try at" in hub_line.detail
    after = status.report(n)
    assert after["hub_busy_until"] is None and after["last_error"] is None and not hub_busy(n)
    assert set(hub_records(busy_hub)) - {("reading", "r-held", 1)} == node_records(n)
    n.close()


def test_a_hub_that_says_come_back_in_a_year_is_believed_for_the_cap_only(env, node, hub):
    """A hostile (or broken) answer in front of the real hub: 503 with Retry-After one year."""
    enroll(env, hub)
    node.close()
    proxy = FaultProxy(hub.port, hub_data=hub.data, pattern=("pass", "busy_a_year") + ("pass",) * 40).start()
    waits: list[float] = []
    try:
        n = Node(config_mod.load(env=sync_env(env, hub_url=proxy.url, retry_after_cap_seconds=600)))
        add_records(n, 4)
        result = Cycle(n, state.identity(n), sleep=waits.append, rand=lambda: 0.5).run()
    finally:
        proxy.stop()
    assert proxy.counts["busy_a_year"] == 1
    assert waits == [600]                      # not 31,536,000 s
    assert result.ok and result.failures == 0 and result.busy == 1
    assert sorted(hub_records(hub)) == sorted(node_records(n))
    n.close()


def test_uploads_turned_away_at_once_are_given_turns_at_the_rate_the_hub_serves_them():
    """300 uploads turned away in the same instant by a process that serves 4 at a time, 0.2 s each
    (20 a second): their Retry-Afters spread them over 15 s, about 20 to a second, none beyond the
    longest allowed."""
    from sync.hub.admission import Admission

    gate = Admission(None, limit=4, retry_max=12, rand=lambda: 0.5, monotonic=lambda: 100.0)
    gate.in_service, gate.upload_seconds = 4, 0.2
    turns = [gate._admit() for _ in range(300)]
    per_second = {t: turns.count(t) for t in set(turns)}
    assert turns == sorted(turns) and min(turns) == 1 and max(turns) == 12
    assert all(19 <= per_second[t] <= 21 for t in range(2, 12))
    assert gate.health()["shed_total"] == 300 and gate.health()["shedding"] == "all"


def test_a_cycle_the_hub_keeps_turning_away_ends_without_error_and_the_daemon_comes_back_after_it(env, node,
                                                                                                   busy_hub):
    enroll(env, busy_hub)
    node.close()
    cfg = sync_env(env, attempts=1, retry_after_cap_seconds=1)
    n = Node(config_mod.load(env=cfg))
    add_records(n, 3)
    held = HeldUpload(busy_hub)
    try:
        result = Cycle(n, state.identity(n), sleep=lambda s: pytest.fail("no wait inside the cycle")).run()
    finally:
        held.finish()
    assert not result.ok and result.error is None and not result.link_failed
    assert result.busy_for == 1 and result.failures == 0
    assert hub_busy(n) and status.report(n)["last_error"] is None
    # the daemon's next cycle: after the Retry-After; its count of broken cycles neither grows nor resets
    assert next_wait(result, 2, n.config["sync"]) == (1, 2)
    n.close()
