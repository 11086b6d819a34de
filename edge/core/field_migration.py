"""Encrypting the ID numbers and phones of an existing database, once (docs/field-encryption.md).

Runs when a store is first opened with `[crypto] encrypt_fields` on: in one transaction it seals
the residents' `id_number` and `phone` (and drops their reversed clear copies), writes the keyed-hash
index, seals the same values inside the outbox payloads, the audit log's before/after and the
readings' patient ids (and the raw messages that carried them), and records the key's check in node_state; then it checkpoints the WAL and
VACUUMs, so the clear values are gone from the file's free pages too. The audit entries not yet
anchored at the hub (nor sealed locally) are hashed again over their sealed values; those already
anchored keep their hashes, and `audit.verify` recomputes them over their opened values.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .field_seal import STATE_KEY, FieldSeal
from .reading import utc_iso

JSON_FIELDS = {"id_number": "id_number", "phone": "phone", "patient_id": "id_number"}


def seal_json(seal: FieldSeal, value: Any) -> Any:
    """`value` with every id_number, phone and patient_id string inside it sealed."""
    if isinstance(value, dict):
        return {k: (seal.seal(JSON_FIELDS[k], v) if k in JSON_FIELDS and isinstance(v, str) else seal_json(seal, v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [seal_json(seal, v) for v in value]
    return value


def open_json(seal: FieldSeal, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (seal.open(JSON_FIELDS[k], v) if k in JSON_FIELDS and isinstance(v, str) else open_json(seal, v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [open_json(seal, v) for v in value]
    return value


def _reseal_text(seal: FieldSeal, text: str | None, *, compact: bool) -> str | None:
    if not text:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    sealed = seal_json(seal, value)
    if sealed == value:
        return text
    if compact:
        return json.dumps(sealed, ensure_ascii=False, separators=(",", ":"), default=str)
    return json.dumps(sealed, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def encrypt_existing(conn, seal: FieldSeal, key_path: Path) -> None:
    from datetime import datetime, timezone

    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM node_state WHERE key = ?", (STATE_KEY,)).fetchone() is None:
            _residents(conn, seal)
            for seq, payload in conn.execute("SELECT seq, payload FROM outbox").fetchall():
                conn.execute("UPDATE outbox SET payload = ? WHERE seq = ?",
                             (_reseal_text(seal, payload, compact=True), seq))
            _audit(conn, seal)
            for rid, meta, raw in conn.execute("SELECT id, meta, raw FROM readings WHERE meta LIKE '%patient_id%'"
                                               ).fetchall():
                conn.execute("UPDATE readings SET meta = ?, raw = ? WHERE id = ?",
                             (_reseal_text(seal, meta, compact=True), seal.seal("raw", raw) if raw else raw, rid))
            state = json.dumps({"suite": seal.suite.name, "path": str(key_path), "check": seal.check()})
            conn.execute("INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?)",
                         (STATE_KEY, state, utc_iso(datetime.now(timezone.utc))))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _residents(conn, seal: FieldSeal) -> None:
    rows = conn.execute("SELECT id, id_number, phone FROM residents").fetchall()
    for rid, ident, phone in rows:
        conn.execute("UPDATE residents SET id_number = ?, phone = ?, id_number_rev = NULL, phone_rev = NULL"
                     " WHERE id = ?", (seal.seal("id_number", ident), seal.seal("phone", phone), rid))
        write_index(conn, seal, rid, ident, phone)


def write_index(conn, seal: FieldSeal, resident_id: str, id_number: str | None, phone: str | None) -> None:
    conn.execute("DELETE FROM resident_field_index WHERE resident_id = ?", (resident_id,))
    conn.executemany("INSERT OR IGNORE INTO resident_field_index (kind, mac, resident_id) VALUES (?, ?, ?)",
                     [(k, m, resident_id) for k, m in seal.keys_for(id_number, phone)])


def _audit(conn, seal: FieldSeal) -> None:
    """Seal the values in before/after. An entry's hash was made over the clear text, so it would
    let whoever has the file confirm a guessed ID number (address code, the birth date kept in
    clear, some 500 sequence numbers): the entries after the last one the county hub anchored or
    the sync process sealed are hashed again over what is now stored, the chain re-linked from
    there. Those up to it keep their hashes (the hub holds them), and `audit.verify` checks them
    over their values opened again (docs/field-encryption.md)."""
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit'"
                            " AND name = 'audit_no_update'").fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    kept = _anchored_or_sealed(conn)
    for seq, before, after in conn.execute("SELECT seq, before, after FROM audit").fetchall():
        b, a = _reseal_text(seal, before, compact=False), _reseal_text(seal, after, compact=False)
        if (b, a) != (before, after):
            conn.execute("UPDATE audit SET before = ?, after = ? WHERE seq = ?", (b, a, seq))
    _rehash_after(conn, kept)
    for _, sql in triggers:
        conn.execute(sql)


def _anchored_or_sealed(conn) -> int:
    """The last audit entry the hub anchored or the local seal covers (0: none)."""
    from . import audit

    seqs = [0]
    for key in (audit.ANCHOR_KEY, audit.SEAL_KEY):
        for (value,) in conn.execute("SELECT value FROM node_state WHERE key = ?", (key,)).fetchall():
            seqs.append(int(json.loads(value).get("seq") or 0))
    return max(seqs)


def _rehash_after(conn, kept: int) -> None:
    from . import audit
    from .suites import suite

    rows = conn.execute("SELECT hash FROM audit WHERE seq = ?", (kept,)).fetchall()
    prev = rows[0][0] if rows else audit.GENESIS
    for entry in conn.execute("SELECT seq, at, actor, action, entity, entity_id, before, after, suite FROM audit"
                              " WHERE seq > ? ORDER BY seq", (kept,)).fetchall():
        h = audit._digest(*tuple(entry)[:8], prev, suite(entry[8]))
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, entry[0]))
        prev = h
