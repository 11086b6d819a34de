"""The doctor's sync page through Flask's test client: up to date or not, refused records with
their reason, a resident changed on both sides resolved by the doctor, and the "sync now" button."""
import json
from datetime import datetime, timezone

from edge.core import outbox
from sync.client import status as sync_status
from followup_support import app_client, csrf  # noqa: F401 (fixture)


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
