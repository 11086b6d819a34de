"""A device correcting a result it sent before (HL7 OBX-11 C "correction", W "wrong", D "delete",
A "amended", B "appended").

The earlier reading is never changed in place nor deleted: it is voided, with the reason and a
link to the reading that replaced it (`superseded_by`), its status before kept in
`status_before_void`, and it goes to the outbox and the audit log like a doctor's voiding. The
earlier result is the one of the same device, code, observation time, observation sub-id and
patient id (what HL7 v2 §7.4.2 repeats in a correction), not yet voided.
"""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from .measuring import _changed
from .reading import STATUS_VOIDED, utc_iso


def supersede_earlier(conn: sqlite3.Connection, reading_id: str, *, reason: str, at: datetime,
                      actor: str) -> list[str]:
    """Void the earlier readings `reading_id` corrects; returns their ids. Call inside the
    transaction that stored `reading_id`."""
    new = conn.execute("SELECT device_id, code, device_time, effective_time, meta FROM readings WHERE id = ?",
                       (reading_id,)).fetchone()
    if new is None or new[2] is None:   # without an observation time nothing identifies the earlier one
        return []
    meta = json.loads(new[4] or "{}")
    rows = conn.execute(
        "SELECT id, status FROM readings WHERE device_id = ? AND effective_time = ? AND device_time = ?"
        " AND code = ? AND id != ? AND status != ? AND superseded_by IS NULL"
        " AND coalesce(json_extract(meta, '$.obx_sub_id'), '') = ?"
        " AND coalesce(json_extract(meta, '$.patient_id'), '') = ?",
        (new[0], new[3], new[2], new[1], reading_id, STATUS_VOIDED, meta.get("obx_sub_id", ""),
         meta.get("patient_id", ""))).fetchall()
    why = f"{reason} (superseded by {reading_id})"
    for old_id, old_status in rows:
        conn.execute("UPDATE readings SET status = ?, status_before_void = status, voided_at = ?, void_reason = ?,"
                     " superseded_by = ? WHERE id = ?", (STATUS_VOIDED, utc_iso(at), why, reading_id, old_id))
        _changed(conn, old_id, "reading.supersede", at, actor, {"status": old_status},
                 {"status": STATUS_VOIDED, "void_reason": why, "superseded_by": reading_id})
    return [r[0] for r in rows]
