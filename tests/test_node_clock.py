"""The box's runtime takes the time from the node's clock (docs/time.md), never from the test
machine's: a node whose clock says BOX_TIME names its backups, judges their age, stamps a refused
update and judges its devices silent at BOX_TIME."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from edge.appliance import doctor, update
from edge.appliance.backup import nightly
from edge.core import config as config_mod, devices, node_health
from edge.core.clock import SystemClock
from edge.core.node import Node
from edge.core.store import Store

BOX_TIME = datetime(2026, 1, 10, 8, 15, 0, tzinfo=timezone.utc)


class BoxClock(SystemClock):
    def now(self):
        return BOX_TIME


@pytest.fixture
def box(env):
    n = Node(config_mod.load(env=env), clock=BoxClock())
    yield n
    n.close()


def test_a_backup_into_a_folder_is_named_by_the_time_it_is_given(tmp_path):
    store = Store(tmp_path / "clinic-edge.db")
    try:
        out = store.backup(tmp_path / "usb", now=BOX_TIME)
        with pytest.raises(TypeError, match="now="):
            store.backup(tmp_path / "usb")
    finally:
        store.close()
    assert out == tmp_path / "usb" / "clinic-edge-20260110T081500Z.db"


def test_the_nightly_backup_is_named_by_the_nodes_clock(box):
    [written] = nightly(box, require_mount=False)
    assert written.name == "clinic-edge-20260110-081500.db"


def test_doctor_judges_the_last_backups_age_on_the_nodes_clock(box):
    nightly(box, now=BOX_TIME - timedelta(days=3), require_mount=False)
    [finding] = doctor.last_backup(box, BOX_TIME, None)
    assert (finding.level, finding.detail) == \
        ("warning", "clinic-edge-20260107-081500.db, 72 h old; NOT on the USB drive")
    [finding] = [f for f in doctor.examine(box) if f.check == "backup"]
    assert finding.detail.startswith("clinic-edge-20260107-081500.db, 72 h old")


def test_a_refused_update_is_stamped_at_the_nodes_clock(box, tmp_path):
    update.record_refused(box, tmp_path / "clinic-edge-9.9.9.bundle", ValueError("bad signature"))
    assert box.read_status("update")["at"] == "2026-01-10T08:15:00+00:00"


def test_the_health_report_judges_silent_devices_on_the_nodes_clock(box):
    devices.add(box.store, "bp-1", kind="bp", transport="mqtt", now=BOX_TIME)
    with box.store.atomic() as conn:
        conn.execute("UPDATE devices SET last_reading_at = ? WHERE id = 'bp-1'",
                     ((BOX_TIME - timedelta(days=1)).isoformat(),))
    assert node_health.report(box)["devices"]["silent_7d"] == []
