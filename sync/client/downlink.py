"""The downlink applier: one page from the hub, applied idempotently in one transaction together
with the new cursor, and never written to the outbox (so it is never echoed back up).

Residents go into the residents table, only into the columns this node's schema has. A resident
the doctor edited here since the hub's last version is not overwritten: the hub's version is kept
in sync_conflicts for the doctor to resolve. Every other kind (code tables, configuration) is
kept as the latest version per (kind, id) in sync_inbox for whoever reads that kind; settings
(kind "config", id = a config section) are checked first and then written to the data directory's
county-config.json, which every service reads at its next start.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from typing import Any

from edge.core import audit, config as config_mod, field_seal, management
from edge.core.field_migration import seal_json, write_index
from edge.core.resident_search import write_keys
from edge.core.residents import by_id_number
from edge.core.errors import CoreError
from edge.core.reading import utc_iso

from . import state, status

PROTECTED = {"id", "version", "created_at", "updated_at"}
# derived here from the name (edge/core/resident_search.py), never taken from the hub's copy, whose
# initials may be by an older rule (docs/residents.md, "Stored initials")
DERIVED = {"name_initials"}
CONFIG_KIND = "config"
log = logging.getLogger(__name__)


def apply_page(store, items: list[dict[str, Any]], cursor: int, *, now: datetime) -> dict[str, int]:
    counts = {"applied": 0, "conflicts": 0, "skipped": 0}
    with store.atomic() as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(residents)")}
        for item in items:
            if item.get("kind") == "resident":
                outcome = _resident(conn, item, columns, now)
            elif item.get("kind") == CONFIG_KIND and not _config_ok(item):
                outcome = "rejected"
            else:
                outcome = _inbox(conn, item, now)
            counts[outcome] = counts.get(outcome, 0) + 1
        state.put(conn, "cursor", cursor, now)
    return counts


def _config_ok(item) -> bool:
    """County settings are checked like the config file; a bad one is refused and logged, never applied."""
    try:
        config_mod.check_county_section(item["id"], item["payload"])
        return True
    except config_mod.ConfigError as e:
        log.error("refused settings from the county (version %s): %s", item.get("version"), e)
        return False


def county_settings(store) -> dict[str, dict[str, Any]]:
    """The county's settings as last received (kind "config", one record per section)."""
    rows = store.query("SELECT record_id, payload FROM sync_inbox WHERE kind = ?", (CONFIG_KIND,))
    return {r["record_id"]: json.loads(r["payload"]) for r in rows}


def _inbox(conn, item, now: datetime) -> str:
    cur = conn.execute("INSERT INTO sync_inbox (kind, record_id, version, payload, received_at) VALUES (?,?,?,?,?)"
                       " ON CONFLICT(kind, record_id) DO UPDATE SET version = excluded.version,"
                       " payload = excluded.payload, received_at = excluded.received_at"
                       " WHERE excluded.version > sync_inbox.version",
                       (item["kind"], item["id"], item["version"], json.dumps(item["payload"], ensure_ascii=False),
                        utc_iso(now)))
    return "applied" if cur.rowcount else "skipped"


def _resident(conn, item, columns: set[str], now: datetime) -> str:
    rid, version, remote = item["id"], int(item["version"]), item["payload"]
    base = conn.execute("SELECT hub_version, local_version FROM sync_resident_base WHERE resident_id = ?",
                        (rid,)).fetchone()
    if base and version <= base[0]:
        return "skipped"
    local = conn.execute("SELECT * FROM residents WHERE id = ?", (rid,)).fetchone()
    values = {k: v for k, v in remote.items() if k in columns and k not in PROTECTED | DERIVED}
    seal = field_seal.of(conn)
    if local is not None:
        local = dict(zip([d[0] for d in conn.execute("SELECT * FROM residents LIMIT 0").description], local))
        local = field_seal.open_record(conn, local)     # compared with the hub's clear values
        edited_here = base is None or local["version"] != base[1]
        if edited_here and any(local.get(k) != v for k, v in values.items()):
            return _conflict(conn, rid, local, remote, version, now)
    taken = seal and values.get("id_number") and by_id_number(conn, values["id_number"], live=False)
    if taken and taken != rid:   # sealed ID numbers are not UNIQUE in SQL: the keyed hash says so
        return _conflict(conn, rid, dict(local or {}) | {"_error": "UNIQUE constraint failed: residents.id_number"},
                         remote, version, now)
    stored = seal.seal_record(values) if seal else values      # docs/field-encryption.md
    try:
        conn.execute("SAVEPOINT downlink_resident")
        if local is None:
            row = {**stored, "id": rid, "created_at": utc_iso(now), "updated_at": utc_iso(now), "version": 1}
            conn.execute(f"INSERT INTO residents ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
            local_version = 1
        else:
            sets = ", ".join(f"{k} = :{k}" for k in values)
            conn.execute(f"UPDATE residents SET {sets + ', ' if sets else ''}updated_at = :_at,"
                         " version = version + 1 WHERE id = :_id", {**stored, "_at": utc_iso(now), "_id": rid})
            local_version = local["version"] + 1
        if local is None or (values.get("name") is not None and values["name"] != local.get("name")):
            name = conn.execute("SELECT name FROM residents WHERE id = ?", (rid,)).fetchone()[0]
            conn.execute("UPDATE residents SET name_initials = ? WHERE id = ?", (write_keys(conn, rid, name or ""), rid))
        if seal and ({"id_number", "phone"} & set(values)):
            now_row = conn.execute("SELECT id_number, phone FROM residents WHERE id = ?", (rid,)).fetchone()
            write_index(conn, seal, rid, seal.open("id_number", now_row[0]), seal.open("phone", now_row[1]))
        conn.execute("RELEASE downlink_resident")
    except sqlite3.IntegrityError as e:   # e.g. an ID number another local resident already has
        conn.execute("ROLLBACK TO downlink_resident")
        conn.execute("RELEASE downlink_resident")
        return _conflict(conn, rid, dict(local or {}) | {"_error": str(e)}, remote, version, now)
    _follow_management(conn, rid, local, values, now)
    conn.execute("INSERT OR REPLACE INTO sync_resident_base (resident_id, hub_version, local_version) VALUES (?,?,?)",
                 (rid, version, local_version))
    before = {k: local.get(k) for k in values} if local else None
    if seal:
        before = seal.seal_record(before) if before else before
    audit.append(conn, actor="hub", action="resident.downlink", entity="resident", entity_id=rid, at=now,
                 before=before, after=stored)
    return "applied"


def _follow_management(conn, rid: str, local: dict | None, values: dict[str, Any], now: datetime) -> None:
    """The county's 高血压/糖尿病 ticks start or end management here, as the resident form's do
    (the management record is what the reports count). Flags the hub did not send stay as they are."""
    flags = {col for pair in management.RESIDENT_COLUMNS.values() for col in pair}
    if not flags & set(values):
        return
    try:
        management.follow_form(conn, rid, {**(local or {}), **values}, local, actor="hub", at=now)
    except CoreError:   # a resident voided here: nothing to manage
        pass


def _conflict(conn, rid: str, local: dict, remote: dict, version: int, now: datetime) -> str:
    seal = field_seal.of(conn)
    if seal:   # both sides kept with the ID number and phone sealed (docs/field-encryption.md)
        local, remote = seal_json(seal, local), seal_json(seal, remote)
    conn.execute("INSERT OR IGNORE INTO sync_conflicts (kind, record_id, local, remote, remote_version, detected_at)"
                 " VALUES ('resident', ?, ?, ?, ?, ?)",
                 (rid, json.dumps(local, ensure_ascii=False, default=str), json.dumps(remote, ensure_ascii=False),
                  version, utc_iso(now)))
    audit.append(conn, actor="hub", action="resident.downlink_conflict", entity="resident", entity_id=rid,
                 at=now, after={"remote_version": version})
    return "conflicts"


def open_conflicts(store) -> list[dict[str, Any]]:
    return status.conflicts(store)
