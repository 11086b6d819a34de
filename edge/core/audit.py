"""Append-only, hash-chained audit log (全程留痕).

Each entry's hash covers its content and the previous entry's hash, so an edited, deleted or
inserted row breaks the chain at that point. `verify()` names the first broken entry.
Triggers in the schema refuse UPDATE and DELETE; the chain catches what bypasses them
(a raw edit of the file). Whoever can edit the file can also recompute every hash, so the chain's
head is anchored at the county hub with each sync (docs/audit.md): the hub keeps the last head it
accepted and answers with it, signed; the sync client records that anchor here (`record_anchor`),
and `verify()` reports an entry the hub already anchored that is now missing or different.
Entries not sent yet are sealed locally: the sync process keeps an HMAC of the head under a key
(secrets/audit-mac.key) that the web service's unit makes inaccessible (InaccessiblePaths), so
whoever only has the web process or the database cannot re-seal a rewritten chain.

Hashes and the seal's MAC use the node's crypto suite (SHA-256 / HMAC-SHA-256 for `ed25519`, SM3 /
HMAC-SM3 for `sm`, docs/crypto-suites.md). Each entry records the suite that hashed it and the seal
records the suite of its MAC, so `verify()` checks every entry with its own suite: a node that
moves to `sm` keeps verifying the entries it wrote before, and the chain runs on across the switch.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import field_seal
from .field_migration import open_json
from .reading import utc_iso
from .suites import DEFAULT, Suite, SuiteError, suite as suite_named

GENESIS = "0" * 64


def _canonical(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _digest(seq: int, at: str, actor: str, action: str, entity: str, entity_id: str,
            before: str | None, after: str | None, prev_hash: str, suite: Suite = DEFAULT) -> str:
    """The entry's hash in `suite`. An ed25519 entry's body is what it has always been; another
    suite's name is hashed with the entry, so relabelling an entry's suite breaks it too."""
    fields = [seq, at, actor, action, entity, entity_id, before, after, prev_hash]
    if suite.name == DEFAULT.name:   # hashlib: the web and ingest services do not load `cryptography`
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    return suite.digest(json.dumps(fields + [suite.name], ensure_ascii=False, separators=(",", ":")).encode()).hex()


def node_suite(conn: sqlite3.Connection) -> Suite:
    """The suite new entries are hashed with: the node's `[crypto] suite`, which its Store records."""
    return suite_named(getattr(conn, "suite", None) or DEFAULT.name)


def append(conn: sqlite3.Connection, *, actor: str, action: str, entity: str, entity_id: str,
           at: datetime, before: Any = None, after: Any = None) -> int:
    """Add one entry. Call inside the transaction that makes the change it records."""
    if not conn.in_transaction:
        raise RuntimeError("audit.append must run inside the change's transaction")
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq = (last[0] + 1) if last else 1
    prev = last[1] if last else GENESIS
    at_s = utc_iso(at)
    b, a = _canonical(before), _canonical(after)
    s = node_suite(conn)
    h = _digest(seq, at_s, actor, action, entity, entity_id, b, a, prev, s)
    conn.execute("INSERT INTO audit (seq, at, actor, action, entity, entity_id, before, after, prev_hash, hash, suite)"
                 " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 (seq, at_s, actor, action, entity, entity_id, b, a, prev, h, s.name))
    return seq


ANCHOR_KEY = "audit.anchor"     # node_state: the head the hub last acknowledged (written by sync)
SEAL_KEY = "audit.seal"         # node_state: the head sealed with the MAC key (written by sync)
MAC_KEY_FILE = "audit-mac.key"  # in the data directory's secrets/; never readable by the web service


@dataclass
class ChainReport:
    ok: bool
    entries: int
    first_broken: int | None = None
    reason: str = ""
    anchor: dict[str, Any] | None = None


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the newest entry; (0, GENESIS) for an empty log."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def hash_at(conn: sqlite3.Connection, seq: int) -> str | None:
    if seq == 0:
        return GENESIS
    row = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    return row[0] if row else None


def anchor(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The last anchor the hub acknowledged: {seq, hash, at, problem, signed}, or None."""
    row = conn.execute("SELECT value FROM node_state WHERE key = ?", (ANCHOR_KEY,)).fetchone()
    return json.loads(row[0]) if row else None


def record_anchor(conn: sqlite3.Connection, *, seq: int, hash_: str, at: str, problem: str | None,
                  signed: dict[str, Any], now: datetime) -> None:
    """Keep the hub's (already verified) anchor; `signed` is its signed document, kept as evidence."""
    value = json.dumps({"seq": seq, "hash": hash_, "at": at, "problem": problem, "signed": signed})
    conn.execute("INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                 " SET value = excluded.value, updated_at = excluded.updated_at", (ANCHOR_KEY, value, utc_iso(now)))


def _mac(key: bytes, seq: int, h: str, suite: Suite = DEFAULT) -> str:
    text = f"CE-AUDIT-SEAL-1\n{seq}\n{h}".encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest() if suite.name == DEFAULT.name else suite.mac(key, text).hex()


def seal(conn: sqlite3.Connection, key: bytes, *, now: datetime) -> int:
    """MAC the current head (after checking the previous seal and the chain since); returns its seq."""
    row = conn.execute("SELECT value FROM node_state WHERE key = ?", (SEAL_KEY,)).fetchone()
    last = json.loads(row[0]) if row else {"seq": 0, "hash": GENESIS}
    report = _against_seal(conn, last["seq"], key) or verify(conn, mac_key=key, after=(last["seq"], last["hash"]))
    if not report.ok:
        raise ValueError(f"not sealing a broken audit chain: {report.reason}")
    seq, h = head(conn)
    s = node_suite(conn)
    value = json.dumps({"seq": seq, "hash": h, "at": utc_iso(now), "mac": _mac(key, seq, h, s), "suite": s.name})
    conn.execute("INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                 " SET value = excluded.value, updated_at = excluded.updated_at", (SEAL_KEY, value, utc_iso(now)))
    return seq


def _against_seal(conn: sqlite3.Connection, count: int, key: bytes | None) -> ChainReport | None:
    row = conn.execute("SELECT value FROM node_state WHERE key = ?", (SEAL_KEY,)).fetchone()
    if key is None or row is None:
        return None
    s = json.loads(row[0])
    try:
        mac_suite = suite_named(str(s.get("suite", DEFAULT.name)))
    except SuiteError as e:
        return ChainReport(False, count, s["seq"], f"the seal of entry {s['seq']} names an unknown suite: {e}")
    if not hmac.compare_digest(_mac(key, s["seq"], s["hash"], mac_suite), str(s.get("mac"))):
        return ChainReport(False, count, s["seq"], f"the seal of entry {s['seq']} is not made with this node's "
                           "audit key: the seal was forged")
    have = hash_at(conn, s["seq"])
    if have is None:
        return ChainReport(False, count, s["seq"], f"entry {s['seq']}, sealed at {s['at']}, is missing: the log was "
                           f"truncated (it ends at entry {count})")
    if have != s["hash"]:
        return ChainReport(False, count, s["seq"], f"entry {s['seq']} differs from the one sealed at {s['at']}: "
                           "the log was rewritten")
    return None


def _against_anchor(conn: sqlite3.Connection, count: int) -> ChainReport:
    a = anchor(conn)
    if not a:
        return ChainReport(True, count)
    have = hash_at(conn, a["seq"])
    if have is None:
        return ChainReport(False, count, a["seq"], f"entry {a['seq']}, acknowledged by the county hub at {a['at']}, "
                           f"is missing: the log was truncated (it ends at entry {count})", a)
    if have != a["hash"]:
        return ChainReport(False, count, a["seq"], f"entry {a['seq']} differs from the one the county hub "
                           f"acknowledged at {a['at']}: the log was rewritten", a)
    if a.get("problem"):
        return ChainReport(False, count, None, f"the county hub flagged this node's audit log: {a['problem']}", a)
    return ChainReport(True, count, anchor=a)


def verify(conn: sqlite3.Connection, *, mac_key: bytes | None = None,
           after: tuple[int, str] = (0, GENESIS)) -> ChainReport:
    """Check every link of the chain (from entry `after`, known good), then the local seal (with
    the MAC key, when given), then the entries the hub has anchored."""
    (expected_seq, prev), count = (after[0] + 1, after[1]), after[0]
    for row in conn.execute("SELECT seq, at, actor, action, entity, entity_id, before, after, prev_hash, hash,"
                            " suite FROM audit WHERE seq > ? ORDER BY seq", (after[0],)):
        seq, at, actor, action, entity, entity_id, before, after, prev_hash, h, suite_name = tuple(row)
        count += 1
        if seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"entry {expected_seq} is missing (next is {seq})")
        if prev_hash != prev:
            return ChainReport(False, count, seq, f"entry {seq} does not follow entry {seq - 1}")
        try:
            s = suite_named(suite_name)
        except SuiteError:
            return ChainReport(False, count, seq, f"entry {seq} names an unknown crypto suite {suite_name!r}")
        if _digest(seq, at, actor, action, entity, entity_id, before, after, prev_hash, s) != h and \
                _digest(seq, at, actor, action, entity, entity_id, *_opened(conn, before, after), prev_hash, s) != h:
            return ChainReport(False, count, seq, f"entry {seq} was changed after it was written")
        prev, expected_seq = h, seq + 1
    anchored = _against_anchor(conn, count)
    return anchored if not anchored.ok else (_against_seal(conn, count, mac_key) or anchored)


def _opened(conn: sqlite3.Connection, before: str | None, after: str | None) -> tuple[str | None, str | None]:
    """An entry written before its node encrypted ID numbers and phones was hashed over the clear
    values that field_migration then sealed in place: its hash is checked over them opened again.
    Entries written since are hashed over what is stored (docs/field-encryption.md)."""
    seal = field_seal.of(conn)
    if seal is None or not (field_seal.PREFIX in (before or "") or field_seal.PREFIX in (after or "")):
        return before, after
    try:
        return tuple(_canonical(open_json(seal, json.loads(t))) if t else t for t in (before, after))
    except (ValueError, field_seal.FieldKeyError):
        return before, after


def history(conn: sqlite3.Connection, entity: str, entity_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT seq, at, actor, action, before, after FROM audit"
                        " WHERE entity = ? AND entity_id = ? ORDER BY seq", (entity, entity_id))
    out, seal = [], field_seal.of(conn)
    show = (lambda v: open_json(seal, v)) if seal else (lambda v: v)
    for seq, at, actor, action, before, after in rows:
        out.append({"seq": seq, "at": at, "actor": actor, "action": action,
                    "before": show(json.loads(before)) if before else None,
                    "after": show(json.loads(after)) if after else None})
    return out
