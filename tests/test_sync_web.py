"""The doctor's sync page through Flask's test client: up to date or not, refused records with
their reason, a resident changed on both sides resolved by the doctor, and the "sync now" button."""
import json
from datetime import datetime, timezone

import pytest

from edge.core import outbox
from edge.core.clock import SystemClock
from edge.core.reading import utc_iso
from sync.client import status as sync_status
from followup_support import app_client, csrf, login, seed  # noqa: F401 (fixture)


def test_sync_page_shows_backlog_refusals_and_sync_now_asks_the_daemon(app_client):
    node, client = app_client
    page = client.get("/sync").text
    assert "尚未在县平台注册" in page and 'id="nav-sync"' in page
    now = datetime.now(timezone.utc)
    with node.store.atomic() as conn:
        conn.execute("INSERT INTO sync_enrollment VALUES (1, 'clinic-a', 'http://county:8470', 'k', ?)", (now.isoformat(),))
        outbox.add(conn, kind="reading", record_id="r-bad", payload={}, at=now)
        conn.execute("UPDATE outbox SET quarantined_at = ?, quarantine_reason = 'reading lacks code'"
                     " WHERE record_id = 'r-bad'", (now.isoformat(),))
    page = client.get("/sync").text
    waiting = node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL AND quarantined_at IS NULL")
    assert f'id="sync-backlog">{waiting}<' in page
    assert "r-bad" in page and "reading lacks code" in page
    r = client.post("/sync/now", data={"csrf_token": csrf(page)})
    assert r.status_code == 303
    assert (node.data_dir / "run" / "sync-now").exists()


def test_doctor_resolves_a_resident_changed_here_and_at_the_county(app_client):
    node, client = app_client
    now = datetime.now(timezone.utc)
    local = node.store.one("SELECT * FROM residents WHERE id = 'R1'")
    remote = {**local, "phone": "13722222222", "version": 7}
    with node.store.atomic() as conn:
        conn.execute("UPDATE residents SET phone = '13711111111' WHERE id = 'R1'")
        conn.execute("INSERT INTO sync_conflicts (kind, record_id, local, remote, remote_version, detected_at)"
                     " VALUES ('resident', 'R1', ?, ?, 3, ?)",
                     (json.dumps({**local, "phone": "13711111111"}), json.dumps(remote), now.isoformat()))
    page = client.get("/sync").text
    assert 'data-resident="R1"' in page and "13722222222" in page and "13711111111" in page
    assert '<span class="badge">!</span>' in page
    before = node.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'resident'")
    r = client.post("/sync/conflicts/1", data={"csrf_token": csrf(page), "keep": "hub"})
    assert r.status_code == 303
    assert node.store.scalar("SELECT phone FROM residents WHERE id = 'R1'") == "13722222222"
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'resident'") == before + 1
    assert sync_status.conflicts(node.store) == []
    assert 'data-resident="R1"' not in client.get("/sync").text


BOX_TIME = datetime(2026, 11, 30, 8, 15, 0, tzinfo=timezone.utc)


class BoxClock(SystemClock):
    """The node's clock stopped at BOX_TIME (a box clock that is not the test machine's)."""

    def now(self):
        return BOX_TIME


@pytest.fixture
def client_on_box_clock(env):
    from edge.core import config as config_mod
    from edge.core.node import Node
    from edge.web import create_app

    node = Node(config_mod.load(env=env), clock=BoxClock())
    app = create_app(node=node)
    seed(node.store, now=BOX_TIME)
    client = app.test_client()
    login(client)
    yield node, client
    node.close()


def test_a_resolved_conflict_is_stamped_at_the_nodes_clock(client_on_box_clock):
    node, client = client_on_box_clock
    local = node.store.one("SELECT * FROM residents WHERE id = 'R1'")
    with node.store.atomic() as conn:
        conn.execute("INSERT INTO sync_conflicts (kind, record_id, local, remote, remote_version, detected_at)"
                     " VALUES ('resident', 'R1', ?, ?, 3, ?)",
                     (json.dumps(local), json.dumps({**local, "phone": "13722222222"}), BOX_TIME.isoformat()))
    page = client.get("/sync").text
    assert client.post("/sync/conflicts/1", data={"csrf_token": csrf(page), "keep": "hub"}).status_code == 303
    stamp = node.store.one("SELECT resolved_at FROM sync_conflicts WHERE id = 1")["resolved_at"]
    assert stamp == utc_iso(BOX_TIME)
    assert node.store.scalar("SELECT updated_at FROM residents WHERE id = 'R1'") == utc_iso(BOX_TIME)
    assert node.store.scalar("SELECT at FROM audit WHERE action = 'resident.conflict_keep_hub'") == \
        utc_iso(BOX_TIME)


def test_sync_page_says_the_hub_is_busy_and_when_the_next_try_is_not_an_error(app_client):
    """Issue 17.5: the hub answered "busy, retry after" (docs/hub.md, "Admission control")."""
    from datetime import timedelta

    from sync.client import state

    node, client = app_client
    now = datetime.now(timezone.utc)
    with node.store.atomic() as conn:
        conn.execute("INSERT INTO sync_enrollment VALUES (1, 'clinic-a', 'http://county:8470', 'k', ?)", (now.isoformat(),))
    state.put_many(node.store, {"busy_until": utc_iso(now + timedelta(seconds=30))}, now)
    page = client.get("/sync").text
    assert 'id="sync-hub-busy"' in page and "繁忙，下次尝试时间" in page
    assert sync_status.report(node)["last_error"] is None
    state.put_many(node.store, {"busy_until": utc_iso(now - timedelta(seconds=1))}, now)   # that time has passed
    assert 'id="sync-hub-busy"' not in client.get("/sync").text
