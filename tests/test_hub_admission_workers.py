"""What every hub worker turned away, where county IT looks (docs/hub.md, "Admission control"): two
real `hub serve` processes on one PostgreSQL database, each serving one upload at a time; an upload
held in service on worker B (tests/test_hub_admission.HeldUpload) makes B turn the next one away,
and worker A's dashboard and `clinic-edge hub admission` say so, though A itself shed nothing."""
from __future__ import annotations

import json

from conftest import clinic_edge, wait_for
from sync_fixtures import Hub
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
