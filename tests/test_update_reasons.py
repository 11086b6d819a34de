"""Every rollback says why (issue 18): which health check failed, its output, how long it waited;
kept on the box (run/update.json), shown by `clinic-edge doctor`, sent to the hub in the hello
and shown per node on its dashboard. The whole rollback of a real broken release is in
test_update_bundles.py; here the parts alone, against a real HTTP server and a real hub."""
from __future__ import annotations

import json

import pytest

from conftest import clinic_edge, free_port, healthz_server
from edge.appliance import update
from sync_fixtures import enroll, hub, sync_env  # noqa: F401


@pytest.fixture
def hub_database(tmp_path) -> str:   # SQLite only: the hub's storage is not what is tested here
    return f"sqlite:///{tmp_path / 'hub.db'}"


class FakeClock:
    """Seconds that pass only when the waiting loop sleeps (the HTTP exchanges are real)."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@pytest.fixture
def unhealthy_web():
    """A real HTTP server answering /healthz like a release whose store is broken."""
    with healthz_server(503, {"ok": False, "store": "error: no such table: _migrations", "disk": "ok",
                              "version": "0.3.0"}) as url:
        yield url


def test_waiting_for_an_unhealthy_release_records_the_check_its_output_and_the_time(unhealthy_web):
    clock = FakeClock()
    waited = update.wait_for_health(unhealthy_web, "0.3.0", 10, sleep=clock.sleep, clock=clock)
    assert not waited.healthy
    reason = waited.reason()
    assert reason["check"] == f"GET {unhealthy_web}" and reason["failed"] == "not ok"
    assert reason["output"].startswith("HTTP 503: ") and "no such table: _migrations" in reason["output"]
    assert reason["waited_s"] == 10.0 and reason["attempts"] == 20
    assert "did not report ok within 10 s" in reason["summary"]


def test_a_release_that_never_answers_records_the_connection_error():
    clock = FakeClock()
    url = f"http://127.0.0.1:{free_port()}/healthz"
    reason = update.wait_for_health(url, "0.3.0", 5, sleep=clock.sleep, clock=clock).reason()
    assert reason["failed"] == "no answer" and "Connection refused" in reason["output"]
    assert reason["waited_s"] == 5.0


def _rolled_back(node, unhealthy_web) -> dict:
    """run/update.json as update.rollback() writes it after waiting for a broken release."""
    clock = FakeClock()
    why = update.wait_for_health(unhealthy_web, "0.3.0", 6, sleep=clock.sleep, clock=clock)
    status = {"result": "rolled back", "from": "0.2.0", "to": "0.3.0", "at": "2026-12-02T10:00:00+00:00",
              "reason": why.reason(), "old_version_healthy": True, "backup": "b.db"}
    node.write_status("update", status)
    return status


def test_doctor_shows_why_the_last_update_was_rolled_back(env, node, unhealthy_web):
    clinic_edge(env, "init")
    _rolled_back(node, unhealthy_web)
    out = clinic_edge(env, "doctor", "--json", check=False)
    found = [f for f in json.loads(out.stdout) if f["check"] == "update"]
    assert len(found) == 1 and found[0]["level"] == "warning", out.stdout
    detail = found[0]["detail"]
    assert "0.2.0 -> 0.3.0 was rolled back" in detail and f"GET {unhealthy_web}" in detail
    assert "not ok" in detail and "after 6.0 s" in detail and "no such table: _migrations" in detail
    text = clinic_edge(env, "doctor", check=False).stdout
    assert "[WARNING] update: update 0.2.0 -> 0.3.0 was rolled back" in text


def test_the_reason_of_a_rollback_reaches_the_hub_dashboard(env, node, hub, unhealthy_web):
    enroll(env, hub)
    _rolled_back(node, unhealthy_web)
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    rows = json.loads(hub.cli("node", "list", "--json").stdout)
    last = rows[0]["health"]["last_update"]
    assert last["result"] == "rolled back" and last["to"] == "0.3.0"
    assert last["reason"]["failed"] == "not ok" and last["reason"]["waited_s"] == 6.0
    assert "no such table: _migrations" in last["reason"]["output"]
    status, page = hub.browser("it", "viewer").get("/")      # county IT, logged in
    assert status == 200
    updates = page[page.index('<table class="updates">'):]
    assert "clinic-a" in updates and "已回滚 rolled back" in updates and "0.2.0 → 0.3.0" in updates
    assert f"GET {unhealthy_web}: not ok after 6 s" in updates
    assert "no such table: _migrations" in updates


def test_a_malformed_update_outcome_from_a_node_shows_as_unknown_for_that_node_only(env, node, hub):
    enroll(env, hub)
    node.write_status("update", {"result": "rolled back", "to": "<b>0.3</b>",
                                 "reason": {"check": "x", "failed": "y", "output": "z", "waited_s": "long"}})
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    status, page = hub.browser("it", "viewer").get("/")      # county IT, logged in
    assert status == 200
    updates = page[page.index('<table class="updates">'):]
    assert "<td>?</td>" in updates and "<b>0.3</b>" not in page
