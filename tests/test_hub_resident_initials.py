"""The hub's copy of a resident keeps the initials its node computed when it was sent; node
migration 125 recomputed them on the node with the surname table (单 Shàn, 曾 Zēng) and sent
nothing up. `hub export --json` (PINNED) gives them by the node's current rule, while the stored
record keeps the bytes the node sent (sync/hub/residents.py, docs/residents.md)."""
from __future__ import annotations

import json
from datetime import date

from county_support import add_nodes, put, resident
from sync_fixtures import Hub


def test_hub_export_gives_a_surnames_initials_by_the_current_rule(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    hub = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}")      # its commands only: no server
    store = hub.store()
    try:
        add_nodes(store, "village-1")
        for rid, name, old in (("R1", "单长乐", "dzl"), ("R2", "曾小明", "cxm"), ("R3", "张三", "zs")):
            payload = resident(rid, name=name, id_number=f"11010119600101{rid[1]:0>3}X", sex="1",
                               birth=date(1960, 1, 1), phone="13800000000", address="东风村",
                               record_no=f"1101010010010000{rid[1]}")
            put(store, "village-1", "resident", rid, {**payload, "name_initials": old})   # the old rule's
        stored = {r["record_id"]: json.loads(r["payload"])["name_initials"] for r in store.export()}
        exported = {r["id"]: r["payload"]["name_initials"] for r in hub.records() if r["kind"] == "resident"}
        assert exported == {"R1": "scl", "R2": "zxm", "R3": "zs"}
        assert stored == {"R1": "dzl", "R2": "cxm", "R3": "zs"}      # what the node sent, as its digest says
    finally:
        store.engine.dispose()
