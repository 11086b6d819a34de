"""The audit chain cannot be rewritten unnoticed (issue 14 item 8): its head is anchored at the hub
with each sync, so rewriting (and re-hashing) or truncating entries already sent is reported by
`clinic-edge audit verify` on the node and flagged by the hub (`hub audit NODE`, dashboard)."""
from __future__ import annotations

import sqlite3

import pytest

from conftest import clinic_edge
from edge.core import audit
from sync_fixtures import Hub, add_records, enroll, sync_env


@pytest.fixture
def hub(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}").start()
    yield h
    h.stop()


def _tamper(db_path, sql: str, params=(), *, drop_seal: bool = False) -> None:
    """What someone with the database file can do: drop the triggers, change rows, re-hash the chain
    (and remove the local seal they cannot remake, leaving only the hub's anchor to notice)."""
    db = sqlite3.connect(db_path)
    if drop_seal:
        db.execute("DELETE FROM node_state WHERE key = ?", (audit.SEAL_KEY,))
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute(sql, params)
    prev = audit.GENESIS
    for row in db.execute("SELECT seq, at, actor, action, entity, entity_id, before, after FROM audit"
                          " ORDER BY seq").fetchall():
        h = audit._digest(*row, prev)
        db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, row[0]))
        prev = h
    db.commit()
    db.close()


def _synced_node(env, node, hub) -> int:
    enroll(env, hub)
    add_records(node, 6)
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    seq, _h = audit.head(node.store.conn)
    assert audit.anchor(node.store.conn)["seq"] == seq >= 2
    r = clinic_edge(env, "audit", "verify")
    assert r.returncode == 0 and f"entries up to {seq} match the county hub's anchor" in r.stdout
    return seq


def test_rewriting_sent_entries_and_recomputing_hashes_is_reported(env, node, hub):
    seq = _synced_node(env, node, hub)
    path = node.config.store_path
    node.close()
    _tamper(path, "UPDATE audit SET actor = 'nobody' WHERE seq = 1", drop_seal=True)
    r = clinic_edge(env, "audit", "verify", check=False)
    assert r.returncode == 1 and f"entry {seq} differs from the one the county hub acknowledged" in r.stderr
    # at the next sync the hub sees it too, and keeps its anchor at the last good head
    clinic_edge(sync_env(env), "sync", "--once", check=False)
    r = hub.cli("audit", "clinic-a", check=False)
    assert r.returncode == 1 and f"audit entry {seq}" in r.stdout and "rewritten" in r.stdout
    page = hub.browser().get("/")[1]
    row = page[page.index('data-node="clinic-a"'):]
    assert "REWRITTEN?" in row[:row.index("</tr>")]
    assert clinic_edge(env, "audit", "verify", check=False).returncode == 1


def test_truncating_sent_entries_is_reported_and_the_hub_flags_the_head_going_back(env, node, hub):
    seq = _synced_node(env, node, hub)
    path = node.config.store_path
    node.close()
    _tamper(path, "DELETE FROM audit WHERE seq > ?", (seq - 1,), drop_seal=True)
    r = clinic_edge(env, "audit", "verify", check=False)
    assert r.returncode == 1 and f"entry {seq}, acknowledged by the county hub" in r.stderr and "truncated" in r.stderr
    clinic_edge(sync_env(env), "sync", "--once", check=False)
    r = hub.cli("audit", "clinic-a", check=False)
    assert r.returncode == 1 and f"went back from entry {seq} to {seq - 1}" in r.stdout


def test_an_honest_node_keeps_extending_its_anchor(env, node, hub):
    first = _synced_node(env, node, hub)
    add_records(node, 3)
    with node.store.atomic() as conn:
        audit.append(conn, actor="test", action="note", entity="node", entity_id="x", at=node.clock.now())
    assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
    r = hub.cli("audit", "clinic-a")
    assert "every reported head extends the last" in r.stdout
    assert audit.anchor(node.store.conn)["seq"] > first


def test_entries_not_sent_yet_are_sealed_with_a_key_the_web_service_cannot_read(env, node, hub):
    enroll(env, hub)
    hub.stop()                                     # the link is down for weeks: nothing is anchored
    add_records(node, 4)
    with node.store.atomic() as conn:
        audit.append(conn, actor="li", action="followup.save", entity="follow_up", entity_id="f1",
                     at=node.clock.now(), after={"sbp": 150})
    clinic_edge(sync_env(env), "sync", "--once", check=False)     # fails to reach the hub, still seals
    assert clinic_edge(env, "audit", "verify").returncode == 0
    path = node.config.store_path
    node.close()
    _tamper(path, "UPDATE audit SET after = '{\"sbp\":120}' WHERE action = 'followup.save'")
    r = clinic_edge(env, "audit", "verify", check=False)
    assert r.returncode == 1 and "differs from the one sealed" in r.stderr
    from pathlib import Path

    unit = (Path(__file__).resolve().parents[1] / "systemd" / "clinic-edge-web.service").read_text()
    assert f"InaccessiblePaths=-/var/lib/clinic-edge/secrets/{audit.MAC_KEY_FILE}" in unit


def test_a_node_that_lost_the_hubs_answer_is_not_flagged_and_proves_it_next_time(tmp_path):
    from datetime import datetime, timezone

    from sync import signing
    from sync.hub import anchors
    from sync.hub.storage import HubStore

    store, key, now = HubStore(f"sqlite:///{tmp_path / 'hub.db'}"), signing.new_key(), datetime.now(timezone.utc)
    h = {n: f"{n:064x}" for n in range(1, 9)}
    assert anchors.report(store, key, "a", {"seq": 3, "hash": h[3]}, now=now)["audit_anchor"]["seq"] == 3
    # the answer was lost: the node still has no anchor, then shows entry 3 as the hub kept it
    answer = anchors.report(store, key, "a", {"seq": 5, "hash": h[5]}, now=now)
    assert "audit_problem" not in answer and answer["audit_anchor"]["seq"] == 3
    answer = anchors.report(store, key, "a", {"seq": 6, "hash": h[6], "at_anchor": {"seq": 3, "hash": h[3]}}, now=now)
    assert "audit_problem" not in answer and answer["audit_anchor"]["seq"] == 6
    # an older anchor is still checked: entry 3 re-hashed is a rewrite
    answer = anchors.report(store, key, "a", {"seq": 8, "hash": h[8], "at_anchor": {"seq": 3, "hash": h[4]}}, now=now)
    assert "rewritten" in answer["audit_problem"] and answer["audit_anchor"]["seq"] == 6
    assert store.audit_problems()["a"][0] == 1


def test_a_node_that_moved_to_sm_keeps_its_anchor_and_the_hub_anchors_its_sm3_head(env, node, hub):
    """The hub keeps (seq, hash) whatever suite made the hash: an ed25519-era anchor stays good after
    the node moves to `sm`, and its SM3 head extends it (docs/crypto-suites.md)."""
    from edge.core import config as config_mod
    from edge.core.node import Node

    first = _synced_node(env, node, hub)
    node.close()
    sm = {**env, "CLINIC_EDGE_CRYPTO_SUITE": "sm"}
    moved = Node(config_mod.load(env=sm))
    add_records(moved, 3, start=100)
    with moved.store.atomic() as conn:
        audit.append(conn, actor="test", action="note", entity="node", entity_id="x", at=moved.clock.now())
    assert clinic_edge(sync_env(sm), "sync", "--once", check=False).returncode == 0
    seq, _h = audit.head(moved.store.conn)
    suites = [r[0] for r in moved.store.conn.execute("SELECT suite FROM audit WHERE seq > ? ORDER BY seq", (first,))]
    assert suites and set(suites) == {"sm"}
    assert audit.anchor(moved.store.conn)["seq"] == seq > first
    assert "every reported head extends the last" in hub.cli("audit", "clinic-a").stdout
    r = clinic_edge(sm, "audit", "verify")
    assert r.returncode == 0 and f"entries up to {seq} match the county hub's anchor" in r.stdout
    moved.close()
