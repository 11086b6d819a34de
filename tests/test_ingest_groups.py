"""commit_groups: one message that cannot be committed never holds back the others (real SQLite)."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from edge.core import devices
from edge.core.ingest import Group, commit_groups
from edge.core.reading import Reading
from tests.conftest import stored_readings

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)


def message(n: int, value=None) -> Group:
    return Group([Reading("bp-1", "8480-6", 100 + n if value is None else value, "mm[Hg]", "mqtt",
                          device_time=datetime(2026, 12, 1, 8, n, tzinfo=timezone.utc))])


def test_the_message_that_fails_the_commit_is_refused_and_the_others_are_stored(node):
    devices.add(node.store, "bp-1", kind="bp", now=NOW)
    groups = [message(n) for n in range(7)]
    def poison(conn):   # what a message writes beside its readings fails (a driver's bug, a constraint)
        conn.execute("INSERT INTO devices (id, kind, transport, created_at) VALUES ('bp-1', 'bp', 'mqtt', 'x')")
    groups[4] = Group(message(4).readings, note=poison)
    results = commit_groups(node.store, groups)
    assert isinstance(results[4], str) and "could not be stored" in results[4] and "IntegrityError" in results[4]
    assert all(isinstance(r, list) and r[0].status == "valid" for i, r in enumerate(results) if i != 4)
    assert sorted(r["value"] for r in stored_readings(node)) == [100, 101, 102, 103, 105, 106]


def test_a_failing_store_is_raised_for_a_retry_never_refused(node):
    devices.add(node.store, "bp-1", kind="bp", now=NOW)
    node.store.conn.execute("PRAGMA busy_timeout = 100")
    other = sqlite3.connect(node.config.store_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")   # another writer holds the lock: nothing is wrong with the readings
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            commit_groups(node.store, [message(1), message(2)])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert stored_readings(node) == []


def test_a_meters_memory_upload_updates_the_device_row_once_a_minute_not_per_reading(node):
    """Each device UPDATE is one more page in that commit (SD-card wear): readings from a meter's
    memory (times long past) must not each move last_reading_at."""
    from datetime import timedelta

    from conftest import SetClock

    devices.add(node.store, "bp-1", kind="bp", now=NOW)
    node.store.conn.execute("CREATE TEMP TABLE device_writes (n INTEGER)")
    node.store.conn.execute("CREATE TEMP TRIGGER count_device_writes AFTER UPDATE ON devices"
                            " BEGIN INSERT INTO device_writes VALUES (1); END")
    for n in range(5):   # one commit each, measured a day ago a second apart, received a second apart
        group = Group([Reading("bp-1", "8480-6", 120, "mm[Hg]", "mqtt",
                               device_time=datetime(2026, 12, 1, 8, 0, n, tzinfo=timezone.utc))])
        commit_groups(node.store, [group], clock=SetClock(NOW + timedelta(seconds=n)))
    assert node.store.scalar("SELECT count(*) FROM temp.device_writes") == 1
    assert node.store.one("SELECT last_seen, last_reading_at FROM devices WHERE id = 'bp-1'") == {
        "last_seen": "2026-12-02T08:00:00.000Z", "last_reading_at": "2026-12-01T08:00:00.000Z"}
    assert len(stored_readings(node)) == 5
