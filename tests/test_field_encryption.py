"""ID numbers and phone numbers encrypted at rest (docs/field-encryption.md), on real SQLite files:
the bytes of the database and its WAL hold no number in clear, search and the duplicate check still
work, a missing or wrong key stops the node and changes nothing, and an existing clear database is
encrypted once."""
from __future__ import annotations

import hashlib
import shutil
import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge.core import audit, config as config_mod, devices, residents
from edge.core.field_seal import FieldKeyError
from edge.core.followup import records
from edge.core.followup.validation import validate
from edge.core.idnumber import check_char
from edge.core.ingest import ingest
from edge.core.node import Node
from edge.core.reading import Reading
from edge.core.resident_search import hint, search
from edge.core.suites import suite
from interop_support import HTN_VISIT
from sync import protocol, record_codec
from sync.client import batcher

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
TODAY = date(2026, 11, 23)
VILLAGE = "110105001001"


def ident(first17: str) -> str:
    return first17 + check_char(first17)


ZHANG = ident("11010519491231002")        # ends in X
LI = ident("11010519600203001")
WANG = ident("11010519700405991")
PHONES = ("13800138000", "13912345678", "0571-87654321")


def sm_node(env, **extra) -> Node:
    return Node(config_mod.load(env={**env, "CLINIC_EDGE_CRYPTO_SUITE": "sm", **extra}))


def make(node, **fields) -> str:
    return residents.create(node.store, fields, division_code=VILLAGE, now=NOW, actor="doc", today=TODAY)


def file_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("clinic-edge.db*")))


def clear_values(*numbers: str) -> list[bytes]:
    out = []
    for n in numbers:
        digits = n.replace("-", "")
        out += [n.encode(), n.lower().encode(), digits.encode(), n[::-1].encode(), digits[::-1].encode()]
    return out


def assert_no_clear(data_dir: Path, *numbers: str) -> None:
    blob = file_bytes(data_dir)
    found = [v for v in clear_values(*numbers) if v in blob]
    assert found == []


def sent_records(envelope: bytes) -> list[dict]:
    return record_codec.decode_records(protocol.open_envelope(envelope).payload)


def register_edit_follow_up_and_sync(node) -> dict[str, str]:
    z = make(node, name="张三", id_number=ZHANG.lower(), phone=PHONES[0], htn="1", htn_diagnosed_on="2020-01-01")
    spaced = f"{LI[:6]} {LI[6:14]} {LI[14:]}"
    li = make(node, name="李四", id_number=spaced, phone=PHONES[1])
    residents.update(node.store, z, {"name": "张三", "id_number": ZHANG, "phone": PHONES[2], "htn": "1",
                                     "htn_diagnosed_on": "2020-01-01"}, now=NOW, actor="doc", today=TODAY)
    v = validate("hypertension", HTN_VISIT, today=TODAY)
    records.save(node.store, resident_id=z, form="hypertension", values=v.values, actor="doc", at=NOW)
    devices.add(node.store, "lab-1", kind="bp", name="analyser", now=NOW, actor="test")
    ingest(node.store, [Reading("lab-1", "8480-6", 128, "mm[Hg]", "astm", source_key="p1",
                                raw=f"P|1||{LI}||李四\rR|1|^^^SBP|128|mmHg", meta={"patient_id": LI})])
    key = suite("ed25519").generate()
    batch = batcher.build(node.store, SimpleNamespace(node="clinic-a", key=key), limit=100, now=NOW)
    assert batch is not None
    return {"zhang": z, "li": li, "envelope": batcher.pending(node.store)[0].envelope}


def test_an_sm_node_keeps_no_id_number_or_phone_in_clear_in_its_file_or_wal(env, data_dir):
    node = sm_node(env)
    ids = register_edit_follow_up_and_sync(node)
    # what the hub gets is the clear record: the batch waiting to be sent opens to the numbers
    sent = [r["payload"] for r in sent_records(ids["envelope"]) if r["kind"] == "resident"]
    assert {(p["id_number"], p["phone"]) for p in sent} == {(ZHANG, PHONES[0]), (LI, PHONES[1]), (ZHANG, PHONES[2])}
    assert (data_dir / "clinic-edge.db-wal").exists()
    assert_no_clear(data_dir, ZHANG, LI, *PHONES)
    assert residents.get(node.store, ids["zhang"])["id_number"] == ZHANG
    assert residents.get(node.store, ids["li"])["id_number"] == LI
    assert node.store.scalar("SELECT resident_id FROM readings") == ids["li"]     # matched by ID number
    assert audit.verify(node.store.conn).ok
    before = [e["before"] for e in audit.history(node.store.conn, "resident", ids["zhang"]) if e["before"]]
    assert before == [{"phone": PHONES[0]}]
    node.close()
    assert_no_clear(data_dir, ZHANG, LI, *PHONES)
    key = data_dir / "keys" / "fields.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_search_finds_exactly_the_right_resident_by_whole_id_tail_and_phone(env):
    node = sm_node(env)
    z = make(node, name="张三", id_number=ZHANG, phone=PHONES[0])
    li = make(node, name="李四", id_number=LI, phone=PHONES[1])
    w = make(node, name="王五", id_number=WANG, phone=PHONES[2])
    cases = {ZHANG: z, ZHANG.lower(): z, f"{ZHANG[:6]} {ZHANG[6:]}": z, ZHANG[-4:].lower(): z, ZHANG[-6:]: z,
             LI: li, LI[-4:]: li, LI[-6:]: li, PHONES[0]: z, PHONES[0][-4:]: z, PHONES[1]: li,
             "057187654321": w, PHONES[2][-4:]: w, WANG[-6:]: w}
    for q, rid in cases.items():
        assert [r["id"] for r in search(node.store, q)] == [rid], q
    assert search(node.store, ZHANG[-5:]) == [] and hint(node.store, ZHANG[-5:])
    assert hint(node.store, ZHANG[-4:]) is None and hint(node.store, "张") is None
    assert [r["id_number"] for r in search(node.store, "张")] == [ZHANG]           # shown opened
    node.close()


def test_the_duplicate_check_refuses_the_same_id_number_however_it_is_typed(env):
    node = sm_node(env)
    first = make(node, name="张三", id_number=ZHANG)
    for typed in (ZHANG, ZHANG.lower(), f"{ZHANG[:6]} {ZHANG[6:14]} {ZHANG[14:]}"):
        with pytest.raises(residents.FormInvalid) as e:
            make(node, name="张三丰", id_number=typed)
        assert e.value.duplicate_of == first
    other = make(node, name="李四", id_number=LI)
    with pytest.raises(residents.FormInvalid):
        residents.update(node.store, other, {"name": "李四", "id_number": ZHANG}, now=NOW, actor="doc", today=TODAY)
    assert node.store.scalar("SELECT count(*) FROM residents") == 2
    node.close()


def _digest(data_dir: Path) -> str:
    """The database's content (its bytes move when SQLite checkpoints on open and close)."""
    conn = sqlite3.connect(data_dir / "clinic-edge.db")
    try:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()


def test_a_missing_or_wrong_key_stops_the_node_and_changes_nothing(env, data_dir, tmp_path):
    node = sm_node(env)
    make(node, name="张三", id_number=ZHANG, phone=PHONES[0])
    node.close()
    key = data_dir / "keys" / "fields.key"
    shutil.move(key, tmp_path / "fields.key")
    before = _digest(data_dir)
    with pytest.raises(FieldKeyError, match="is missing.*restore it"):
        sm_node(env).store
    assert not key.exists() and _digest(data_dir) == before       # never made again over the data
    other = tmp_path / "other"
    other.mkdir()
    sm_node({**env, "CLINIC_EDGE_DATA": str(other)}).store.close()   # a key of another node
    shutil.copy(other / "keys" / "fields.key", key)
    with pytest.raises(FieldKeyError, match="not the one this database was encrypted with"):
        sm_node(env).store
    key.write_text("")
    with pytest.raises(FieldKeyError, match="damaged"):
        sm_node(env).store
    assert _digest(data_dir) == before
    shutil.copy(tmp_path / "fields.key", key)
    node = sm_node(env)
    assert [r["name"] for r in search(node.store, ZHANG)] == ["张三"]
    node.close()


def test_an_existing_clear_database_is_encrypted_once_and_its_file_keeps_no_clear_value(env, data_dir):
    node = Node(config_mod.load(env=env))           # ed25519, fields in clear (the default)
    ids = register_edit_follow_up_and_sync(node)
    node.close()
    assert ZHANG.encode() in file_bytes(data_dir)
    node = sm_node(env)
    assert node.store.fields and node.store.fields.suite.name == "sm"
    assert_no_clear(data_dir, ZHANG, LI, *PHONES)
    assert audit.verify(node.store.conn).ok                 # old entries keep their hashes
    assert [r["id"] for r in search(node.store, ZHANG[-6:])] == [ids["zhang"]]
    assert [r["id"] for r in search(node.store, PHONES[1][-4:])] == [ids["li"]]
    assert residents.get(node.store, ids["zhang"])["phone"] == PHONES[2]
    assert batcher.pending(node.store)[0].envelope == ids["envelope"]
    with pytest.raises(residents.FormInvalid):
        make(node, name="张三丰", id_number=ZHANG)
    node.close()
    assert_no_clear(data_dir, ZHANG, LI, *PHONES)


def test_the_default_suite_seals_with_aes_when_asked_and_not_otherwise(env, data_dir):
    node = Node(config_mod.load(env=env))
    assert node.store.fields is None
    node.close()
    node = Node(config_mod.load(env={**env, "CLINIC_EDGE_CRYPTO_ENCRYPT_FIELDS": "on"}))
    make(node, name="张三", id_number=ZHANG, phone=PHONES[0])
    assert node.store.fields.suite.name == "ed25519"
    assert node.store.scalar("SELECT id_number FROM residents").startswith("ef1:")
    node.close()
    assert_no_clear(data_dir, ZHANG, PHONES[0])


def test_a_bad_crypto_setting_names_the_key(env):
    with pytest.raises(config_mod.ConfigError, match="encrypt_fields"):
        config_mod.load(env={**env, "CLINIC_EDGE_CRYPTO_ENCRYPT_FIELDS": "maybe"})


def test_residents_from_the_hub_are_sealed_indexed_and_a_taken_id_number_is_a_conflict(env, data_dir):
    from sync.client import downlink, status

    node = sm_node(env)
    local = make(node, name="李四", id_number=LI, phone=PHONES[1])
    items = [{"kind": "resident", "id": "hub-1", "version": 3,
              "payload": {"name": "赵六", "id_number": ZHANG, "phone": PHONES[0], "sex": "2"}},
             {"kind": "resident", "id": "hub-2", "version": 1, "payload": {"name": "钱七", "id_number": LI}}]
    assert downlink.apply_page(node.store, items, 7, now=NOW) == {"applied": 1, "conflicts": 1, "skipped": 0}
    assert [r["id"] for r in search(node.store, ZHANG[-6:])] == ["hub-1"]
    assert [r["id"] for r in search(node.store, LI)] == [local]
    (conflict,) = status.conflicts(node.store)
    assert conflict["record_id"] == "hub-2" and conflict["remote"]["id_number"] == LI
    assert audit.verify(node.store.conn).ok
    node.close()
    assert_no_clear(data_dir, ZHANG, LI, *PHONES[:2])


def test_the_search_page_says_which_lengths_a_sealed_number_is_found_by(env):
    import re

    from edge.core import accounts
    from edge.web import create_app

    node = sm_node(env, CLINIC_EDGE_WEB_LANGUAGE="en")
    accounts.add(node.store, "doc", "doctor-pass-1", now=NOW)
    z = make(node, name="张三", id_number=ZHANG, phone=PHONES[0])
    c = create_app(node=node).test_client()
    tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": tok})
    page = c.get(f"/?q={ZHANG[-5:]}").text
    assert 'id="search-hint"' in page and "last 4 or 6 characters" in page
    assert 'data-lengths="4,6,7,8,9,10,11,12,17,18"' in page and "last 4 or 6 of ID number" in page
    page = c.get(f"/?q={ZHANG[-6:]}").text
    assert 'id="search-hint"' not in page and f"/residents/{z}" in page and ZHANG in page
    node.close()


def test_an_audit_entry_sealed_by_the_migration_still_shows_a_change(env, data_dir):
    node = Node(config_mod.load(env=env))
    z = make(node, name="张三", id_number=ZHANG, phone=PHONES[0])
    node.close()
    node = sm_node(env)
    conn = node.store.conn
    (seq, after), = conn.execute("SELECT seq, after FROM audit WHERE entity_id = ?", (z,)).fetchall()
    assert PHONES[0] not in after and audit.verify(conn).ok
    forged = after.replace(json_value(after, "phone"), node.store.fields.seal("phone", PHONES[1]))
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET after = ? WHERE seq = ?", (forged, seq))
    report = audit.verify(conn)
    assert (report.ok, report.first_broken) == (False, seq)
    node.close()


def json_value(text: str, key: str) -> str:
    import json
    return json.loads(text)[key]


def _hashes(data_dir: Path) -> dict[int, str]:
    db = sqlite3.connect(data_dir / "clinic-edge.db")
    try:
        return dict(db.execute("SELECT seq, hash FROM audit"))
    finally:
        db.close()


def test_the_audit_hashes_of_a_migrated_node_are_no_check_value_for_its_id_numbers(env, data_dir):
    """A hash made over a clear ID number confirms a guess (the birth date and address are in clear,
    some 500 sequence numbers remain): after the migration the file holds none of those hashes for
    entries the hub has not anchored, and the chain still verifies."""
    node = Node(config_mod.load(env=env))                   # ed25519, fields in clear
    z = make(node, name="张三", id_number=ZHANG)              # no phone: only the ID number to guess
    residents.update(node.store, z, {"name": "张三", "id_number": LI}, now=NOW, actor="doc", today=TODAY)
    node.close()
    clear_era = _hashes(data_dir)
    db = sqlite3.connect(data_dir / "clinic-edge.db")
    assert ZHANG in db.execute("SELECT after FROM audit WHERE action = 'resident.create'").fetchall()[0][0]
    db.close()
    node = sm_node(env)
    assert audit.verify(node.store.conn).ok
    node.close()
    blob = file_bytes(data_dir)
    assert [s for s, h in clear_era.items() if h.encode() in blob] == []
    assert_no_clear(data_dir, ZHANG, LI)
    node = sm_node(env)
    hist = audit.history(node.store.conn, "resident", z)
    assert [(e["action"], (e["after"] or {}).get("id_number")) for e in hist] == [
        ("resident.create", ZHANG), ("resident.update", LI)]
    node.close()


def test_audit_entries_the_hub_anchored_keep_their_hashes_through_the_migration(env, data_dir):
    node = Node(config_mod.load(env=env))
    make(node, name="张三", id_number=ZHANG)
    seq, h = audit.head(node.store.conn)
    with node.store.atomic() as conn:
        audit.record_anchor(conn, seq=seq, hash_=h, at="2026-11-23T08:00:00Z", problem=None, signed={}, now=NOW)
    make(node, name="李四", id_number=LI)
    node.close()
    clear_era = _hashes(data_dir)
    node = sm_node(env)
    report = audit.verify(node.store.conn)
    assert (report.ok, report.anchor["seq"]) == (True, seq)
    node.close()
    after = _hashes(data_dir)
    assert {s: after[s] == clear_era[s] for s in clear_era} == {s: s <= seq for s in clear_era}
