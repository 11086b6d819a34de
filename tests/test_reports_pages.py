"""The pages around the worklist and the reports: the header's sync badge, on every page, counts
the records waiting for the county up to 999 and then says "999+" (a clinic that has not synced
for a year has ~170,000 waiting; counting them all cost every page ~35 ms); the sync page gives
the exact number."""
from datetime import datetime, timezone

from edge.core import outbox
from followup_support import app_client  # noqa: F401 (fixture)

NOW = datetime(2026, 3, 28, 2, 0, tzinfo=timezone.utc)


def badge(client) -> str:
    nav = client.get("/worklist").text.split('id="nav-sync">')[1].split("</a>")[0]
    return nav.split('<span class="badge">')[1].split("</span>")[0] if "badge" in nav else ""


def waiting(store) -> int:
    return store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL AND quarantined_at IS NULL")


def add_waiting(store, n: int) -> None:
    with store.atomic() as conn:
        for i in range(n):
            outbox.add(conn, kind="reading", record_id=f"r-{waiting(store)}-{i}", payload={"i": i}, at=NOW)


def test_the_sync_badge_counts_up_to_999_then_says_999_plus(app_client):
    node, client = app_client
    add_waiting(node.store, 998 - waiting(node.store))
    assert badge(client) == "998"
    add_waiting(node.store, 1)
    assert badge(client) == "999"
    add_waiting(node.store, 1)
    assert badge(client) == "999+"
    add_waiting(node.store, 50)
    assert badge(client) == "999+" and waiting(node.store) == 1050
