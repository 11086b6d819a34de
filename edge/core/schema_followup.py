"""Follow-up forms and reports (migration block 500-599).

- chronic_management: a resident's enrolment into hypertension / type 2 diabetes management
  (纳入管理, the 管理卡), the denominator of every KPI. Kept here, apart from the diagnosis the
  personal record holds, because management has its own start (and the workbench's resident
  columns were not there when this was written).
- followups: the current version of each follow-up, with the columns reports query.
- followup_versions: every saved version in full (a correction adds a version; nothing is
  overwritten or deleted).
- reports: each report the clinic wrote (a snapshot, also sent upstream through the outbox).
"""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements


@migration(500, "follow-up records, versions, chronic management, reports")
def followups(db: sqlite_utils.Database) -> None:
    for sql in (
        """CREATE TABLE chronic_management (
            resident_id TEXT NOT NULL REFERENCES residents(id),
            disease TEXT NOT NULL CHECK (disease IN ('hypertension','diabetes')),
            since TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            ended_on TEXT,
            end_reason TEXT,
            PRIMARY KEY (resident_id, disease)
        )""",
        """CREATE TABLE followups (
            id TEXT PRIMARY KEY,
            resident_id TEXT NOT NULL REFERENCES residents(id),
            form TEXT NOT NULL CHECK (form IN ('hypertension','diabetes')),
            version INTEGER NOT NULL,
            visit_date TEXT NOT NULL,
            visit_mode TEXT NOT NULL,
            sbp INTEGER,
            dbp INTEGER,
            fbg REAL,
            classification TEXT,
            next_step TEXT,
            next_visit_date TEXT,
            urgent INTEGER NOT NULL DEFAULT 0,
            bp_source TEXT,
            author TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            voided_at TEXT,
            void_reason TEXT
        )""",
        "CREATE INDEX followups_resident ON followups(resident_id, form, visit_date)",
        "CREATE INDEX followups_visit_date ON followups(visit_date, form)",
        """CREATE TABLE followup_versions (
            followup_id TEXT NOT NULL REFERENCES followups(id),
            version INTEGER NOT NULL,
            data TEXT NOT NULL,
            sources TEXT NOT NULL DEFAULT '{}',
            suggestions TEXT NOT NULL DEFAULT '{}',
            alerts TEXT NOT NULL DEFAULT '[]',
            author TEXT NOT NULL,
            saved_at TEXT NOT NULL,
            reason TEXT,
            PRIMARY KEY (followup_id, version)
        )""",
        """CREATE TRIGGER followup_versions_no_update BEFORE UPDATE ON followup_versions
           BEGIN SELECT RAISE(ABORT, 'a saved follow-up version never changes; save a correction'); END""",
        """CREATE TRIGGER followup_versions_no_delete BEFORE DELETE ON followup_versions
           BEGIN SELECT RAISE(ABORT, 'follow-up versions are never deleted'); END""",
        """CREATE TRIGGER followups_no_delete BEFORE DELETE ON followups
           BEGIN SELECT RAISE(ABORT, 'follow-ups are voided with a reason, never deleted'); END""",
        """CREATE TABLE reports (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            period TEXT NOT NULL,
            period_start TEXT NOT NULL,
            period_end TEXT NOT NULL,
            data TEXT NOT NULL,
            author TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX reports_period ON reports(period, created_at)",
    ):
        db.execute(sql)


@migration(501, "covering indexes and per-patient summaries for the worklist and the reports")
def followup_indexes(db: sqlite_utils.Database) -> None:
    # The worklist groups every follow-up by (resident, form); the reports scan a date range.
    # Both read only these columns, so neither touches the table rows (5,000 residents x 3 years).
    db.execute("CREATE INDEX followups_standing ON followups(resident_id, form, visit_date, id, visit_mode,"
               " next_step, next_visit_date, voided_at)")
    db.execute("CREATE INDEX followups_period ON followups(visit_date, resident_id, form, visit_mode, sbp, dbp,"
               " fbg, bp_source, id, voided_at)")
    # readings by source for a report period (readings hold the raw payload: their rows are large)
    db.execute("CREATE INDEX readings_period_source ON readings(effective_time, status, transport, code)")
    # per-patient summaries kept current by every save (edge/core/followup/standing.py)
    db.execute("""CREATE TABLE followup_standing (
        resident_id TEXT NOT NULL, form TEXT NOT NULL, last_id TEXT NOT NULL, last_date TEXT NOT NULL,
        last_mode TEXT NOT NULL, next_step TEXT, next_visit_date TEXT, last_f2f_date TEXT,
        PRIMARY KEY (resident_id, form)) WITHOUT ROWID""")
    db.execute("""CREATE TABLE followup_year (
        year INTEGER NOT NULL, resident_id TEXT NOT NULL, form TEXT NOT NULL,
        face_to_face INTEGER NOT NULL, last_bp TEXT, last_fbg TEXT,
        PRIMARY KEY (year, resident_id, form)) WITHOUT ROWID""")
    from .followup import standing
    standing.rebuild(db.conn)


@migration(520, "the measuring session a follow-up was filled from and the readings each field used")
def followup_readings(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE followups ADD COLUMN session_id INTEGER")
    db.execute("CREATE INDEX followups_session ON followups(session_id) WHERE session_id IS NOT NULL")
    # field -> reading(s): one row per reading; two or three rows for a field are their mean
    db.execute("""CREATE TABLE followup_readings (
        followup_id TEXT NOT NULL REFERENCES followups(id),
        version INTEGER NOT NULL,
        field TEXT NOT NULL,
        reading_id TEXT NOT NULL REFERENCES readings(id),
        PRIMARY KEY (followup_id, version, field, reading_id)) WITHOUT ROWID""")
    db.execute("CREATE INDEX followup_readings_reading ON followup_readings(reading_id)")


@migration(521, "covering indexes of the management and residents the reports and the worklist join")
def report_join_indexes(db: sqlite_utils.Database) -> None:
    # The report and the worklist walk every management (edge/reports/source.py) and join it to
    # residents for the name, birth date and whether the record is voided; with these two the
    # join reads index entries only, never the (wide) table rows.
    db.execute("CREATE INDEX chronic_management_report ON chronic_management(resident_id, disease, since, ended_on)")
    db.execute("CREATE INDEX residents_report ON residents(id, voided_at, birth_date, name)")


@migration(530, "readings counted per UTC hour, source and code, kept by triggers, for the reports")
def reading_hours(db: sqlite_utils.Database) -> None:
    # The report's 设备读数 (readings by source) counted ~45,000 index entries a month; these
    # triggers keep the count of valid readings per UTC hour instead, whatever writes a reading
    # (ingest, a device's correction, a void, the clock fix, a restore), so a month sums ~700 rows
    # per source and code. Hours, not days: a clinic's month in its own zone starts on a UTC hour
    # (edge/reports/source.py counts the rest of an hour from the readings for other zones).
    # Readings are never deleted (readings_no_delete), so no delete trigger is needed.
    key = "substr({0}.effective_time, 1, 13), {0}.transport, {0}.code"
    run_statements(
        db,
        """CREATE TABLE reading_hours (
            hour TEXT NOT NULL, transport TEXT NOT NULL, code TEXT NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (hour, transport, code)) WITHOUT ROWID""",
        f"""CREATE TRIGGER reading_hours_insert AFTER INSERT ON readings WHEN NEW.status = 'valid'
           BEGIN INSERT INTO reading_hours VALUES ({key.format('NEW')}, 1)
                 ON CONFLICT (hour, transport, code) DO UPDATE SET n = n + 1; END""",
        f"""CREATE TRIGGER reading_hours_update_old AFTER UPDATE OF status, effective_time, transport, code
           ON readings WHEN OLD.status = 'valid'
           BEGIN UPDATE reading_hours SET n = n - 1
                 WHERE hour = substr(OLD.effective_time, 1, 13) AND transport = OLD.transport
                 AND code = OLD.code; END""",
        f"""CREATE TRIGGER reading_hours_update_new AFTER UPDATE OF status, effective_time, transport, code
           ON readings WHEN NEW.status = 'valid'
           BEGIN INSERT INTO reading_hours VALUES ({key.format('NEW')}, 1)
                 ON CONFLICT (hour, transport, code) DO UPDATE SET n = n + 1; END""",
        "INSERT INTO reading_hours SELECT substr(effective_time, 1, 13), transport, code, count(*) FROM readings"
        " WHERE status = 'valid' GROUP BY 1, 2, 3",
    )


REPORT_INPUTS = ("followups", "chronic_management", "residents")


@migration(531, "a token that changes with every change to what the report and the worklist read")
def report_inputs(db: sqlite_utils.Database) -> None:
    # edge/reports/cached.py keeps a computed report or worklist while this token is the same.
    # Every insert, update or delete of a follow-up, a management or a resident draws a new random
    # token in the same transaction (so a copy or a restore of the database never reuses one for
    # other contents). Readings are not inputs here: the report adds its readings fresh (530).
    run_statements(db, "CREATE TABLE report_inputs (id INTEGER PRIMARY KEY CHECK (id = 1), token BLOB NOT NULL)",
                   "INSERT INTO report_inputs VALUES (1, randomblob(16))")
    for table in REPORT_INPUTS:
        for op in ("INSERT", "UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER report_inputs_{table}_{op.lower()} AFTER {op} ON {table}"
                       " BEGIN UPDATE report_inputs SET token = randomblob(16); END")


REPORT_RESIDENT = {"followups": "resident_id", "chronic_management": "resident_id", "residents": "id"}


@migration(550, "which resident each change to the report inputs was about, for the reports' recompute")
def report_changes(db: sqlite_utils.Database) -> None:
    # edge/reports/cached.py recomputes, after a save, only the residents changed since its kept
    # result: each change that draws a new token (531) also appends the resident it was about and
    # that new token, in the same trigger and so the same transaction. A kept result remembers the
    # (seq, token) it was computed at; if that row is still here with that token, the rows after it
    # are everything that changed since (a restored or copied database has other tokens). The
    # oldest rows are dropped past KEEP_CHANGES; a result older than that is recomputed in full.
    run_statements(db, "CREATE TABLE report_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, resident_id TEXT,"
                       " token BLOB NOT NULL)",
                   "INSERT INTO report_changes (resident_id, token) SELECT NULL, token FROM report_inputs")
    for table, column in REPORT_RESIDENT.items():
        report_input_triggers(db, table, column)


def report_input_triggers(db: sqlite_utils.Database, table: str, column: str) -> None:
    """Make `table` a report input: each change draws a new token (531) and logs the resident (550)."""
    for op in ("INSERT", "UPDATE", "DELETE"):
        db.execute(f"DROP TRIGGER IF EXISTS report_inputs_{table}_{op.lower()}")
        rows = {"INSERT": ["NEW"], "UPDATE": ["OLD", "NEW"], "DELETE": ["OLD"]}[op]
        log = [f"INSERT INTO report_changes (resident_id, token) SELECT {row}.{column}, token FROM report_inputs"
               + (f" WHERE OLD.{column} IS NOT NEW.{column}" if row == "NEW" and op == "UPDATE" else "") + ";"
               for row in rows]
        db.execute(f"CREATE TRIGGER report_inputs_{table}_{op.lower()} AFTER {op} ON {table} BEGIN"
                   " UPDATE report_inputs SET token = randomblob(16);"
                   f" {' '.join(log)}"
                   f" DELETE FROM report_changes WHERE seq <= (SELECT max(seq) FROM report_changes) - {KEEP_CHANGES};"
                   " END")


KEEP_CHANGES = 2000
