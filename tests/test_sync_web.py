"""The doctor's sync page through Flask's test client: up to date or not, refused records with
their reason, a resident changed on both sides resolved by the doctor, and the "sync now" button."""
import json
from datetime import datetime, timedelta, timezone

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


@pytest.fixture
def direct_client(env):
    """A logged-in doctor on a node that sends its documents to a real county platform on loopback
    ([direct], docs/interop.md §6), with three residents of two follow-ups each (9 documents)."""
    from county_platform import Platform
    from edge.core import accounts, config as config_mod
    from edge.core.node import Node
    from edge.web import create_app
    from interop_support import CLINIC, make_records

    with Platform() as platform:
        node = Node(config_mod.load(env={**env, "CLINIC_EDGE_NODE_NAME": CLINIC.node,
                                         "CLINIC_EDGE_DIRECT_KIND": "fhir",
                                         "CLINIC_EDGE_DIRECT_TARGET": platform.url + "/fhir",
                                         "CLINIC_EDGE_DIRECT_CLINIC_CODE": CLINIC.code}))
        app = create_app(node=node)
        accounts.add(node.store, "doc", "doctor-pass-1", display_name="王医生", now=datetime.now(timezone.utc))
        make_records(node.store, 3)
        client = app.test_client()
        login(client)
        yield node, client, platform
        node.close()


def ticking(start: datetime):
    """A clock for one sending round: a second later at each call, as the sender's own would be."""
    times = iter(start + timedelta(seconds=i) for i in range(10_000))
    return lambda: next(times)


def test_direct_deliveries_and_the_platforms_refusals_show_on_the_sync_page_and_healthz(direct_client):
    from interop_support import id_number
    from sync.client import direct

    node, client, platform = direct_client
    health = client.get("/healthz")
    assert (health.status_code, health.get_json()["direct"]) == (200, "ok")     # configured, nothing sent yet
    assert 'id="direct-last-success">从未<' in client.get("/sync").text
    platform.refuse = {id_number(1)}       # the platform has no health record for the second resident
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    assert direct.send_once(node, now=ticking(start)) == {"new": 9, "delivered": 6, "refused": 3}
    page = client.get("/sync").text
    assert "直接报送县平台" in page
    assert 'id="direct-delivered">6<' in page and 'id="direct-waiting">0<' in page
    assert 'id="direct-refused">3<' in page and 'id="direct-last-success">从未<' not in page
    assert page.count(f"身份证号 {id_number(1)} 未在平台建档") == 3        # the reason a doctor can act on
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["ok"] is False
    assert health.get_json()["direct"].startswith("refusing: 3 documents refused")
    assert health.get_json()["direct_deliveries"]["delivered"] == 6
    client.get("/lang/en")
    main = client.get("/sync").text.split("<main>")[1]
    assert "Sent to the county platform directly" in main and "Refused by the platform" in main


def test_healthz_is_not_ok_while_direct_documents_are_stuck_and_ok_once_they_go(direct_client):
    from sync.client import direct

    node, client, platform = direct_client
    platform.fail_next = 9                 # the platform is down for every document of this round
    assert direct.send_once(node, now=ticking(datetime.now(timezone.utc) - timedelta(hours=2))) == \
        {"new": 9, "retrying": 9}
    health = client.get("/healthz")        # and the sender has not run since: its unit is down
    assert health.status_code == 503
    assert health.get_json()["direct"].startswith("stuck: the direct sender has not finished a round since")
    platform.fail_next = 9                 # the sender runs again, the platform is still down
    assert direct.send_once(node, now=ticking(datetime.now(timezone.utc) - timedelta(minutes=1)),
                            rand=lambda: 0.0) == {"new": 0, "retrying": 9}      # due again a second later
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["direct"].startswith("stuck: 9 documents waiting")
    assert 'id="direct-waiting">9 (' in client.get("/sync").text
    assert direct.send_once(node, now=ticking(datetime.now(timezone.utc))) == {"new": 0, "delivered": 9}
    health = client.get("/healthz")
    assert (health.status_code, health.get_json()["direct"]) == (200, "ok")
    assert 'id="direct-delivered">9<' in client.get("/sync").text


def hub_busy_for(node, seconds: float) -> None:
    """An enrolled node whose hub's last answer was "busy, retry after `seconds`" (past when negative)."""
    from datetime import timedelta

    from sync.client import state

    now = datetime.now(timezone.utc)
    with node.store.atomic() as conn:
        conn.execute("INSERT OR IGNORE INTO sync_enrollment VALUES (1, 'clinic-a', 'http://county:8470', 'k', ?)",
                     (now.isoformat(),))
    state.put_many(node.store, {"busy_until": utc_iso(now + timedelta(seconds=seconds))}, now)


def test_sync_page_says_the_hub_is_busy_and_when_the_next_try_is_not_an_error(app_client):
    """Issue 17.5: the hub answered "busy, retry after" (docs/hub.md, "Admission control")."""
    node, client = app_client
    hub_busy_for(node, 30)
    page = client.get("/sync").text
    assert 'id="sync-hub-busy"' in page and "繁忙，下次尝试时间" in page
    assert sync_status.report(node)["last_error"] is None
    hub_busy_for(node, -1)                                  # that time has passed
    assert 'id="sync-hub-busy"' not in client.get("/sync").text


def test_sync_now_while_the_hub_is_busy_says_when_it_will_run(app_client):
    """The daemon keeps a "sync now" until the hub's Retry-After has passed; the doctor is told so."""
    node, client = app_client
    hub_busy_for(node, 300)
    r = client.post("/sync/now", data={"csrf_token": csrf(client.get("/sync").text)}, follow_redirects=True)
    assert "县平台繁忙，将在" in r.text and (node.data_dir / "run" / "sync-now").exists()
