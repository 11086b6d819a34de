"""The audit chain on the node's crypto suite (issue 21 item 1, docs/crypto-suites.md): a node that
moves from `ed25519` to `sm` keeps verifying the entries it hashed with SHA-256 and hashes new ones
with SM3 on the same chain; a change to an old or a new entry is found at its own entry."""
from __future__ import annotations

import sqlite3
from datetime import date, datetime, timezone

from edge.core import audit, config as config_mod, devices, residents
from edge.core.node import Node
from edge.core.suites import suite

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def _node(env, name: str) -> Node:
    return Node(config_mod.load(env={**env, "CLINIC_EDGE_CRYPTO_SUITE": name,
                                     "CLINIC_EDGE_CRYPTO_ENCRYPT_FIELDS": "off"}))


def _entries(node) -> list[tuple]:
    return node.store.conn.execute("SELECT seq, suite, hash FROM audit ORDER BY seq").fetchall()


def _tamper(path, seq: int) -> None:
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER IF EXISTS audit_no_update")
    db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = ?", (seq,))
    db.commit()
    db.close()


def _ed25519_then_sm(env) -> tuple[Node, int]:
    node = _node(env, "ed25519")
    for i in range(3):
        devices.add(node.store, f"bp-{i}", kind="bp", name="cuff", now=NOW, actor="doc")
    old = audit.head(node.store.conn)[0]
    key = b"k" * 32
    with node.store.atomic() as conn:
        audit.seal(conn, key, now=NOW)
    node.close()
    node = _node(env, "sm")
    residents.create(node.store, {"name": "张三", "sex": "1", "birth_date": "1950-01-01"},
                     division_code="110105001001", now=NOW, actor="doc", today=date(2026, 11, 23))
    devices.add(node.store, "bp-9", kind="bp", name="cuff", now=NOW, actor="doc")
    with node.store.atomic() as conn:
        audit.seal(conn, key, now=NOW)
    return node, old


def test_a_node_moved_to_sm_keeps_its_sha256_entries_and_hashes_new_ones_with_sm3(env):
    node, old = _ed25519_then_sm(env)
    entries = _entries(node)
    assert [s for _q, s, _h in entries] == ["ed25519"] * old + ["sm"] * (len(entries) - old)
    conn = node.store.conn
    first_sm = conn.execute("SELECT seq, at, actor, action, entity, entity_id, before, after, prev_hash, hash"
                            " FROM audit WHERE seq = ?", (old + 1,)).fetchone()
    assert first_sm["prev_hash"] == entries[old - 1][2]              # the chain runs on across the switch
    assert audit._digest(*tuple(first_sm)[:9], suite("sm")) == first_sm["hash"]
    assert audit._digest(*tuple(first_sm)[:9]) != first_sm["hash"]
    seal = audit.verify(conn, mac_key=b"k" * 32)
    assert (seal.ok, seal.entries) == (True, len(entries))
    assert '"suite": "sm"' in node.store.scalar("SELECT value FROM node_state WHERE key = ?", (audit.SEAL_KEY,))
    node.close()


def test_other_stores_on_an_sm_node_hash_with_sm3_too(env):
    node, old = _ed25519_then_sm(env)
    path = node.config.store_path
    node.close()
    from edge.core.store import Store
    web = Store(path, migrate=False, check=False)      # how the web service opens the file
    devices.add(web, "bp-web", kind="bp", name="cuff", now=NOW, actor="doc")
    assert web.conn.execute("SELECT suite FROM audit ORDER BY seq DESC LIMIT 1").fetchone()[0] == "sm"
    assert audit.verify(web.conn).ok
    web.close()


def test_a_changed_entry_is_found_whichever_suite_hashed_it(env):
    node, old = _ed25519_then_sm(env)
    path, last = node.config.store_path, audit.head(node.store.conn)[0]
    node.close()
    assert last - 1 > old
    for seq in (2, last - 1):                          # an ed25519-era entry, then an sm one
        _tamper(path, seq)
        node = _node(env, "sm")
        report = audit.verify(node.store.conn)
        assert (report.ok, report.first_broken, report.reason) == (
            False, seq, f"entry {seq} was changed after it was written")
        node.close()
        db = sqlite3.connect(path)
        db.execute("UPDATE audit SET actor = 'doc' WHERE seq = ?", (seq,))
        db.commit()
        db.close()


def test_relabelling_an_entry_with_the_other_suite_is_found(env):
    node, old = _ed25519_then_sm(env)
    path = node.config.store_path
    node.close()
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET suite = 'sm' WHERE seq = 1")
    db.commit()
    db.close()
    node = _node(env, "sm")
    report = audit.verify(node.store.conn)
    assert (report.ok, report.first_broken) == (False, 1)
    node.close()
