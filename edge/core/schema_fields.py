"""Field-encryption tables (versions 570-579, docs/field-encryption.md): the keyed-hash index that
lets search and the duplicate check find a resident whose ID number and phone are sealed."""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements as _run


@migration(570, "keyed-hash index of sealed ID numbers and phones")
def field_index(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # kind: id (the whole normalised ID number), id4, id6 (its tails), phone, phone4
        """CREATE TABLE resident_field_index (
            kind TEXT NOT NULL,
            mac TEXT NOT NULL,
            resident_id TEXT NOT NULL REFERENCES residents(id),
            PRIMARY KEY (kind, mac, resident_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX resident_field_index_resident ON resident_field_index(resident_id)",
    )
