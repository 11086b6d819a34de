"""One source of truth for chronic-disease enrolment (migration 510, follow-up/report block).

Before 510 the reports merged two places: chronic_management (the follow-up team's 纳入管理
table) and the resident record's htn/t2dm flags. From 510 on chronic_management is the record
(edge/core/management.py) and the flags are derived from it. This migration carries every
existing enrolment over, so no report number changes and nothing is dropped:
- a flagged resident without a management row gets one, starting on the diagnosis date, else on
  the day the record was made (exactly what the reports counted before);
- a resident with an active management row gets the flag.
Each carried-over row is written to the outbox and the audit log, like any other change.
"""
from __future__ import annotations

from datetime import datetime, timezone

import sqlite_utils

from . import audit, outbox
from .migrations import migration

ACTOR = "migration-510"


@migration(510, "chronic_management is the enrolment record; resident flags derived from it")
def single_enrolment(db: sqlite_utils.Database) -> None:
    conn, at = db.conn, datetime.now(timezone.utc)
    for disease, flag, diagnosed in (("hypertension", "htn", "htn_diagnosed_on"),
                                     ("diabetes", "t2dm", "t2dm_diagnosed_on")):
        rows = conn.execute(
            f"SELECT id, COALESCE({diagnosed}, substr(created_at, 1, 10)) FROM residents r WHERE {flag} = 1"
            " AND NOT EXISTS (SELECT 1 FROM chronic_management c WHERE c.resident_id = r.id AND c.disease = ?)",
            (disease,)).fetchall()
        for rid, since in rows:
            ts = at.isoformat()
            conn.execute("INSERT INTO chronic_management (resident_id, disease, since, created_at, updated_at)"
                         " VALUES (?,?,?,?,?)", (rid, disease, since[:10], ts, ts))
            after = {"resident_id": rid, "disease": disease, "since": since[:10], "ended_on": None, "end_reason": None}
            outbox.add(conn, kind="chronic_management", record_id=f"{rid}:{disease}", payload=after, at=at)
            audit.append(conn, actor=ACTOR, action="management.enrol", entity="chronic_management",
                         entity_id=f"{rid}:{disease}", at=at, before=None, after=after)
        flagged = conn.execute(
            f"SELECT r.id FROM residents r JOIN chronic_management c ON c.resident_id = r.id AND c.disease = ?"
            f" WHERE c.ended_on IS NULL AND r.{flag} = 0", (disease,)).fetchall()
        for (rid,) in flagged:
            conn.execute(f"UPDATE residents SET {flag} = 1 WHERE id = ?", (rid,))
            audit.append(conn, actor=ACTOR, action="resident.update", entity="resident", entity_id=rid, at=at,
                         before={flag: 0}, after={flag: 1})
    conn.execute("CREATE INDEX IF NOT EXISTS chronic_management_disease ON chronic_management(disease, ended_on)")
