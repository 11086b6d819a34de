"""The hub's PostgreSQL pool pings a connection only when it has sat idle (storage.IDLE_PING), not
at every checkout (a round trip each time a request reads or writes, several per request). A
connection the database dropped while the hub was quiet (a restart) is still replaced before a
request gets it (docs/hub.md, "Many nodes at once")."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone



def drop_hub_connections(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        return len(c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND pid <> pg_backend_pid()").fetchall())


def test_a_connection_dropped_while_the_hub_was_idle_is_replaced_before_a_request_uses_it(postgres):  # noqa: F811
    from sync.hub.storage import IDLE_PING, HubStore

    url = postgres.new_database()
    clock = [1000.0]
    store = HubStore(url, pool_size=2, monotonic=lambda: clock[0])
    try:
        now = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
        store.add_node("clinic-1", "code-1", now=now, ttl=timedelta(hours=1))
        assert store.node("clinic-1")["name"] == "clinic-1"          # its connection is back in the pool
        assert drop_hub_connections(url) >= 1                         # the database restarts, say
        clock[0] += IDLE_PING
        assert store.node("clinic-1")["name"] == "clinic-1"
        with store.begin() as c:                                      # and a write after it
            store.drop_chunks(c, "clinic-1", "b-1")
    finally:
        store.engine.dispose()
