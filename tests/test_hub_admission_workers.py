"""What every hub worker turned away, where county IT looks (docs/hub.md, "Admission control"): two
real `hub serve` processes on one PostgreSQL database, each serving one upload at a time; an upload
held in service on worker B (tests/test_hub_admission.HeldUpload) makes B turn the next one away,
and worker A's dashboard and `clinic-edge hub admission` say so, though A itself shed nothing."""
from __future__ import annotations

import json

from conftest import clinic_edge, wait_for
from sync_fixtures import Hub, hub_database  # noqa: F401
from test_hub_admission import HeldUpload, a_node, health, upload


def test_the_dashboard_of_one_worker_shows_the_uploads_another_worker_turned_away(postgres, env, tmp_path):
    url = postgres.new_database()
    data = tmp_path / "hub"
    data.mkdir()
    first = Hub(env, data, url, uploads_in_service="1", busy_retry_max_seconds="7").start()
    second = Hub(env, data, url, uploads_in_service="1", busy_retry_max_seconds="7").start()
    try:
        client, key = a_node(second)
        held = HeldUpload(second)
        try:
            assert upload(client, key, "clinic-a", "b1")[0] == 503
        finally:
            assert held.finish() == 200
        assert health(first)[1]["admission"]["shed_total"] == 0       # A turned nothing away itself

        browser = first.browser("it", "viewer")
        line = "县平台繁忙：最近一分钟有 1 次上传被要求稍后再试"
        page = wait_for(lambda: (lambda p: p if line in p else None)(browser.get("/")[1]), 30,
                        interval=0.5, message="worker B's shedding on worker A's dashboard")
        assert "hub busy: 1 uploads in the last minute were asked to try again later" in page
        assert f"pid {second.proc.pid}" in page                  # which worker it was

        figures = json.loads(clinic_edge(first.env, "hub", "admission", "--json").stdout)
        assert figures["shed"] == 1
        (b,) = [w for w in figures["workers"] if w["shed"]]
        assert b["limit"] == 1
        text = clinic_edge(first.env, "hub", "admission").stdout
        assert "turned_away=1" in text and line in text
    finally:
        first.stop()
        second.stop()


def test_a_worker_writes_its_figures_only_when_they_changed_or_a_minute_passed(hub_database):  # noqa: F811
    """On SQLite and PostgreSQL: one row per worker, rewritten in place; nothing written while the
    figures stay the same (the clock is the test's), and a worker heard of no more drops off."""
    from datetime import datetime, timedelta, timezone

    from sync.hub import admission_figures
    from sync.hub.storage import HubStore

    store = HubStore(hub_database, pool_size=1)
    figures = {"served_last_minute": 0, "shed_last_minute": 3, "uploads_in_service": 1, "limit": 1}
    clock = {"m": 1000.0, "now": datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)}
    reporter = admission_figures.Reporter(store, lambda: dict(figures), now=lambda: clock["now"],
                                          monotonic=lambda: clock["m"])
    try:
        assert reporter.write_if_due()
        assert not reporter.write_if_due()                 # unchanged: no write
        figures["shed_last_minute"] = 5
        clock["m"] += 10
        assert reporter.write_if_due()
        seen = admission_figures.recent(store, clock["now"])
        assert (seen["shed"], seen["served"], len(seen["workers"])) == (5, 0, 1)
        clock["m"] += admission_figures.ALIVE
        assert reporter.write_if_due()                     # unchanged for a minute: written to say it is alive
        assert admission_figures.recent(store, clock["now"] + timedelta(minutes=3)) == \
            {"workers": [], "served": 0, "shed": 0}
    finally:
        store.engine.dispose()
