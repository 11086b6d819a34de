"""The hub's dashboard needs an account (issue 14 item 5), against a real `hub serve`: anonymous
visitors get the log-in page, a viewer cannot do an admin's action, forms need the CSRF token, and
a node reporting malformed health (a real signed hello) shows "?" without breaking the page."""
from __future__ import annotations

import json
import re

import pytest

from edge.core import config as config_mod
from edge.core.node import Node
from sync.client import state, tls
from sync.client.transport import HubClient
from sync_fixtures import Hub, HubBrowser, enroll


@pytest.fixture
def hub(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}").start()
    yield h
    h.stop()


def test_anonymous_visitors_get_the_login_page_and_no_node_names(env, hub):
    enroll(env, hub, "secret-village")
    status, page = HubBrowser(hub.url, hub.ssl_context()).get("/")
    assert status == 200 and 'name="password"' in page
    assert "secret-village" not in page
    b = HubBrowser(hub.url, hub.ssl_context())
    password = hub.add_user("li", "viewer")
    status, page = b.login("li", "wrong-password")
    assert status == 401 and "wrong user name or password" in page and "secret-village" not in page
    status, page = b.login("li", password)
    assert status == 200 and 'data-node="secret-village"' in page
    assert "register a node" not in page                  # no admin form for a viewer
    token = b.csrf("/")
    assert b.post("/logout", {}, token=token)[0] == 200
    assert "secret-village" not in b.get("/")[1]


def test_a_viewer_cannot_register_a_node_and_forms_need_the_csrf_token(hub):
    viewer = hub.browser("viewer1", "viewer")
    status, _page = viewer.post("/nodes", {"name": "new-clinic"}, token=viewer.csrf("/"))
    assert status == 403
    admin = hub.browser("admin1", "admin")
    status, page = admin.post("/nodes", {"name": "new-clinic"})              # no token
    assert status == 400 and "form expired" in page
    status, page = admin.post("/nodes", {"name": "new-clinic"}, token=admin.csrf("/"))
    assert status == 200 and re.search(r'<code class="code">[A-Z0-9-]{14}</code>', page)
    assert hub.store().node("new-clinic") is not None
    assert hub.store().node("new-clinic")["pubkey"] is None


def test_a_node_reporting_malformed_health_shows_question_marks_for_itself_only(env, hub, tmp_path):
    good_env = {**env, "CLINIC_EDGE_DATA": str(tmp_path / "good")}
    (tmp_path / "good").mkdir()
    enroll(good_env, hub, "good-clinic")
    enroll(env, hub, "odd-clinic")
    good = Node(config_mod.load(env=good_env))
    from sync.client.controller import Cycle

    assert Cycle(good, state.identity(good)).run().ok
    good.close()
    odd = Node(config_mod.load(env=env))
    ident = state.identity(odd)
    client = HubClient(hub.url, node=ident.node, key=ident.key, hub_pubkey=ident.hub_pubkey, timeout=10,
                       context=tls.client_context(odd.data_dir))
    report = {"backlog": "many", "software": {"x": 1}, "clock_offset_s": "NaN", "quarantined": [1],
              "health": {"disk_free_pct": "lots", "temperature_c": [80], "uptime_s": -5,
                         "devices": {"registered": "3", "silent_7d": "bp-1"}, "update": 7}}
    client.call("POST", "/v1/hello", json.dumps(report).encode())
    odd.close()
    status, page = hub.browser().get("/")
    assert status == 200
    good_row = page[page.index('data-node="good-clinic"'):]
    good_row = good_row[:good_row.index("</tr>")]
    odd_row = page[page.index('data-node="odd-clinic"'):]
    odd_row = odd_row[:odd_row.index("</tr>")]
    assert "% free" in good_row and "?" not in good_row and "clinic-edge/" in good_row
    assert "磁盘 disk ?% free" in odd_row and "温度 ? °C" in odd_row and "设备 devices ?" in odd_row
    assert "lots" not in odd_row and "many" not in odd_row
    rows = {r["name"]: r for r in json.loads(hub.cli("node", "list", "--json").stdout)}
    assert rows["odd-clinic"]["health"]["disk_free_pct"] == {"invalid": True}
