"""A resident the county sends down with 高血压 ticked is under management here, as if the doctor
had ticked it: the reports count the management record, not the flag."""
from __future__ import annotations

from datetime import datetime, timezone

from edge.core import management
from edge.core.store import Store
from sync.client.downlink import apply_page

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def resident(version: int, **extra) -> dict:
    payload = {"name": "王建国", "sex": "1", "birth_date": "1956-03-02", **extra}
    return {"kind": "resident", "id": "res-hub-1", "version": version, "payload": payload}


def test_downlinked_ticks_start_and_end_management(tmp_path):
    store = Store(tmp_path / "n.db")
    apply_page(store, [resident(1, htn=1, htn_diagnosed_on="2019-05-01")], 1, now=NOW)
    assert set(management.active(store, "res-hub-1")) == {"hypertension"}
    assert store.scalar("SELECT htn FROM residents WHERE id = 'res-hub-1'") == 1

    apply_page(store, [resident(2, phone="13800138000")], 2, now=NOW)      # flags not sent: unchanged
    assert set(management.active(store, "res-hub-1")) == {"hypertension"}

    apply_page(store, [resident(3, htn=0)], 3, now=NOW)
    assert management.active(store, "res-hub-1") == {}
    assert store.scalar("SELECT count(*) FROM outbox WHERE kind = 'resident'") == 0  # never echoed up
