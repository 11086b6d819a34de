"""A rolled-back update restores the pre-update backup, but readings the failed version stored in
the meantime (acknowledged to their devices) are carried into the restored database, not lost."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from edge.appliance import update
from edge.core import audit, devices
from edge.core.ingest import carry_forward, ingest
from edge.core.reading import Reading
from edge.core.store import Store

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def bp(n: int) -> Reading:
    return Reading("bp-1", "8480-6", 120 + n, "mm[Hg]", "mqtt", device_time=T0 + timedelta(minutes=n))


def test_carry_forward_adds_only_missing_readings_with_their_ids(tmp_path):
    live = Store(tmp_path / "live.db")
    devices.add(live, "bp-1", kind="bp", now=T0)
    ingest(live, [bp(n) for n in range(3)])
    backup = live.backup(tmp_path / "backup.db")
    ingest(live, [bp(n) for n in range(3, 6)])          # written after the backup
    live.close()
    restored = Store(backup)
    carried, skipped = carry_forward(restored, str(tmp_path / "live.db"), actor="test", now=T0)
    assert (carried, skipped) == (3, 0)
    assert carry_forward(restored, str(tmp_path / "live.db"), actor="test", now=T0) == (0, 0)
    ids = {r["id"] for r in restored.query("SELECT id FROM readings")}
    assert ids == {bp(n).id for n in range(6)}
    assert restored.scalar("SELECT count(*) FROM outbox WHERE kind = 'reading'") == 6
    assert audit.verify(restored.conn).ok


def test_rollback_keeps_readings_the_failed_version_acknowledged(tmp_path, node, env):
    devices.add(node.store, "bp-1", kind="bp", now=T0)
    ingest(node.store, [bp(n) for n in range(2)])
    backup = node.store.backup(node.path("backups", "pre-update-0.2.0-to-0.3.0.db"))
    ingest(node.store, [bp(n) for n in range(2, 5)])    # the new version ran for a while
    node.close()
    layout = update.Layout(tmp_path / "opt")
    layout.prefix.mkdir()
    (layout.prefix / "0.2.0").mkdir()
    commands = []
    ticks = itertools.count(0, 1000)
    update.rollback(node, layout, update.Outcome("0.2.0", "0.3.0", backup), run=commands.append,
                    sleep=lambda s: None, clock=lambda: next(ticks))
    assert layout.current_version() == "0.2.0"
    stored = {r["id"] for r in node.store.query("SELECT id FROM readings")}
    assert stored == {bp(n).id for n in range(5)}
    assert (node.data_dir / "backups" / "failed-update-0.3.0.db").exists()
    assert len(commands) == 2  # stop, then restart the old version
