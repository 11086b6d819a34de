"""The hub's copy of a resident keeps the initials its node computed when it was sent; node
migration 125 recomputed them on the node with the surname table (单 Shàn, 曾 Zēng) and sent
nothing up. `hub export --json` (PINNED) gives them by the node's current rule, while the stored
record keeps the bytes the node sent (sync/hub/residents.py, docs/residents.md)."""
from __future__ import annotations

import json
from datetime import date

from county_support import T0, add_nodes, put, resident
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


def test_a_resident_the_hub_sends_down_is_found_by_the_initials_of_the_current_rule(tmp_path):
    """The downlink derives the initials on the node (sync/client/downlink.py): the hub's copy may
    carry the old rule's, and a resident without initials rows is not found by initials at all."""
    from edge.core.resident_search import search
    from edge.core.store import Store
    from sync.client.downlink import apply_page

    store = Store(tmp_path / "node.db")
    try:
        sent = {"name": "单长乐", "sex": "1", "birth_date": "1950-01-01", "name_initials": "dzl"}   # the old rule's
        assert apply_page(store, [{"kind": "resident", "id": "H1", "version": 1, "payload": sent}], 1,
                          now=T0)["applied"] == 1
        assert [r["id"] for r in search(store, "scl")] == ["H1"] == [r["id"] for r in search(store, "dcl")]
        assert store.scalar("SELECT name_initials FROM residents WHERE id = 'H1'") == "scl"
        renamed = {**sent, "name": "曾小明", "name_initials": "cxm"}
        apply_page(store, [{"kind": "resident", "id": "H1", "version": 2, "payload": renamed}], 2, now=T0)
        assert [r["id"] for r in search(store, "zxm")] == ["H1"] and search(store, "scl") == []
        assert store.scalar("SELECT name_initials FROM residents WHERE id = 'H1'") == "zxm"
    finally:
        store.close()


def test_the_countys_name_taken_for_a_resident_changed_on_both_sides_is_found_by_its_initials(tmp_path):
    from edge.core import residents
    from edge.core.resident_search import search
    from edge.core.store import Store
    from sync.client import status
    from sync.client.downlink import apply_page

    store = Store(tmp_path / "node.db")
    try:
        rid = residents.create(store, {"name": "张三", "id_number": "11010519491231002X"}, division_code="110105001001",
                               now=T0, actor="doc")
        sent = {"name": "曾小明", "id_number": "11010519491231002X", "name_initials": "cxm"}   # the old rule's
        assert apply_page(store, [{"kind": "resident", "id": rid, "version": 3, "payload": sent}], 1,
                          now=T0)["conflicts"] == 1
        [conflict] = status.conflicts(store)
        assert conflict["fields"] == ["name"]                       # not the initials derived from it
        status.resolve(store, conflict["id"], "hub", actor="doc", now=T0)
        assert [r["id"] for r in search(store, "zxm")] == [rid] and search(store, "zs") == []
        assert store.scalar("SELECT name_initials FROM residents WHERE id = ?", (rid,)) == "zxm"
    finally:
        store.close()
