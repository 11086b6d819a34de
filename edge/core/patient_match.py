"""Which resident an analyser's or monitor's patient id means.

Analysers and monitors send the id the operator typed or scanned (ASTM P.3-P.5, HL7 PID-3):
in a village clinic that is the resident's ID number (GB 11643, 18 characters) or their
health-record number. A match must be exact and unique; anything else leaves the reading
without a resident, so it waits in the doctor's inbox to be assigned by hand.
"""
from __future__ import annotations

import sqlite3

from . import field_seal

MAX_ID = 64


def resident_for_patient_id(conn: sqlite3.Connection, patient_id: str | None) -> str | None:
    """The id of the one live resident whose ID number or health-record number is `patient_id`."""
    pid = (patient_id or "").strip()
    if not pid or len(pid) > MAX_ID:
        return None
    seal = field_seal.of(conn)
    if seal:   # ID numbers sealed (docs/field-encryption.md): found by the keyed hash of the number
        rows = conn.execute(
            "SELECT id FROM residents WHERE voided_at IS NULL AND (id IN (SELECT resident_id FROM"
            " resident_field_index WHERE kind = 'id' AND mac = ?) OR health_record_no = ?) LIMIT 2",
            (seal.index("id", field_seal.normal_id(pid)), pid)).fetchall()
        return rows[0][0] if len(rows) == 1 else None
    rows = conn.execute(
        "SELECT id FROM residents WHERE voided_at IS NULL AND (upper(id_number) = ? OR health_record_no = ?)"
        " LIMIT 2", (pid.upper(), pid)).fetchall()
    return rows[0][0] if len(rows) == 1 else None
