"""The counts the reports read instead of scanning (migration 530: readings per UTC hour, source
and code, kept by triggers) equal a count from scratch over the readings, after new readings, a
late (back-dated) reading, a doctor's void, a device's correction, a clock fix that moves a
reading into another month, and on a store whose readings were there before the migration;
for a zone whose midnight is on the hour and for one whose is not (India, UTC+5:30)."""
from datetime import date, datetime, timedelta, timezone

import pytest

from edge.core import corrections, devices, measuring, schema_followup
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.core.store import Store
from edge.reports import source
from edge.reports.population import month, quarter, year
from conftest import SetClock

NOW = datetime(2026, 3, 28, 2, 0, tzinfo=timezone.utc)
BOX_CLOCK = SetClock(NOW, "boot-1", 1000.0)
ZONES = ("Asia/Shanghai", "Asia/Kolkata", "America/New_York", "UTC")
PERIODS = (month(2026, 1), month(2026, 2), month(2026, 3), quarter(2026, 1), year(2026), year(2025))


def bp(device: str, value: float, at: datetime, transport: str = "mqtt", code: str = "8480-6") -> Reading:
    return Reading(device, code, value, "mm[Hg]", transport, device_time=at)


def agree(store) -> dict:
    """Every period in every zone: the kept counts give what counting every reading gives."""
    seen = {}
    for tz in ZONES:
        for p in PERIODS:
            fast, scan = source.readings_by_source(store, p, tz), source.readings_by_source_scan(store, p, tz)
            assert fast == scan, (tz, p)
            seen[(tz, p.label)] = fast
    return seen


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "edge.db")
    for dev, transport in (("bp-1", "mqtt"), ("bp-2", "ble"), ("bp-3", "serial")):
        devices.add(s, dev, kind="bp", transport=transport, now=NOW)
    yield s
    s.close()


def edges() -> list[datetime]:
    """Times on and around the month boundaries of each zone (local midnights, half hours)."""
    out = []
    for day in (date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)):
        for hours in (-8, -5.5, -5, 0, 5):
            t = datetime.combine(day, datetime.min.time(), timezone.utc) - timedelta(hours=hours)
            out += [t - timedelta(milliseconds=1), t, t + timedelta(minutes=29), t + timedelta(minutes=31)]
    return out


def test_kept_counts_equal_a_count_of_the_readings(store):
    times = edges()
    ingest(store, [bp("bp-1", 120 + i % 40, t) for i, t in enumerate(times)], clock=BOX_CLOCK)
    ingest(store, [bp("bp-2", 130, t, "ble", "8462-4") for t in times[::3]]
           + [bp("bp-3", 999, t, "serial") for t in times[::5]], clock=BOX_CLOCK)   # 999 is rejected
    assert store.scalar("SELECT count(*) FROM readings WHERE status != 'valid'") > 0
    before = agree(store)
    assert sum(r["count"] for r in before[("Asia/Shanghai", "2026-Q1")]) > 20

    # a late reading: sent in March, measured in January (a device that was offline)
    ingest(store, [bp("bp-2", 125, datetime(2026, 1, 15, 3, tzinfo=timezone.utc), "ble")], clock=BOX_CLOCK)
    after = agree(store)
    jan = {(r["source"], r["code"]): r["count"] for r in after[("Asia/Shanghai", "2026-01")]}
    was = {(r["source"], r["code"]): r["count"] for r in before[("Asia/Shanghai", "2026-01")]}
    assert jan[("ble", "8480-6")] == was.get(("ble", "8480-6"), 0) + 1

    # the doctor voids a reading; a device's correction (HL7 OBX-11 C) voids the one it replaces
    first = store.scalar("SELECT id FROM readings WHERE status = 'valid' AND transport = 'mqtt' ORDER BY id")
    measuring.void_reading(store, first, "测错了", now=NOW, actor="doc")
    ingest(store, [Reading("bp-1", "8480-6", 118, "mm[Hg]", "mqtt", device_time=times[10],
                           source_key="corrected")], clock=BOX_CLOCK)
    new = Reading("bp-1", "8480-6", 118, "mm[Hg]", "mqtt", device_time=times[10], source_key="corrected").id
    with store.atomic() as conn:
        voided = corrections.supersede_earlier(conn, new, reason="OBX-11 C", at=NOW, actor="device:bp-1")
    assert voided
    agree(store)

    # the clock fix moves a reading's effective time (sync/client/timefix.py does this UPDATE)
    with store.atomic() as conn:
        conn.execute("UPDATE readings SET effective_time = '2026-02-20T04:00:00.000Z' WHERE id = (SELECT id FROM"
                     " readings WHERE status = 'valid' AND effective_time < '2026-01-15' ORDER BY id LIMIT 1)")
    agree(store)
    assert store.scalar("SELECT count(*) FROM reading_hours WHERE n < 0") == 0


def test_migration_counts_the_readings_already_stored(store):
    ingest(store, [bp("bp-1", 120 + i % 40, t) for i, t in enumerate(edges())], clock=BOX_CLOCK)
    expected = agree(store)
    with store.atomic() as conn:      # the store as it was before 530
        for name in ("reading_hours_insert", "reading_hours_update_old", "reading_hours_update_new"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE reading_hours")
    with store.atomic():
        schema_followup.reading_hours(store.db)
    assert agree(store) == expected
