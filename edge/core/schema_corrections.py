"""Corrections sent by a device (migration 350, drivers block): a reading that a later result
from the same device replaces (HL7 OBX-11 C, W or D) is voided with the reason, and
`superseded_by` names the reading that replaced it (docs/devices.md, "HL7 result status")."""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements


@migration(350, "readings: superseded_by, the device's correction that replaced a reading")
def superseded_by(db: sqlite_utils.Database) -> None:
    run_statements(db, "ALTER TABLE readings ADD COLUMN superseded_by TEXT REFERENCES readings(id)")
