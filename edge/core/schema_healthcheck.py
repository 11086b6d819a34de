"""The elderly's annual health check (migration block 600-619).

- health_checks: the current version of each 健康体检表, with the columns the worklist and the
  KPI read (check date and year, self-care total and band, whether the elderly check is complete).
- health_check_versions: every saved version in full (a correction adds a version; nothing is
  overwritten or deleted), with the reading each device-filled field came from.
- health_check_readings: field -> the reading(s) it came from, per version.
- health_check_rows: the form's tables of rows (住院史, 家庭病床史, 主要用药情况, 预防接种史), per
  version (611).
"""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements
from .schema_followup import report_input_triggers


@migration(600, "health checks (健康体检表) with their versions and the readings each field used")
def health_checks(db: sqlite_utils.Database) -> None:
    run_statements(
        db,
        """CREATE TABLE health_checks (
            id TEXT PRIMARY KEY,
            resident_id TEXT NOT NULL REFERENCES residents(id),
            version INTEGER NOT NULL,
            check_date TEXT NOT NULL,
            year INTEGER NOT NULL,
            selfcare_total INTEGER,
            selfcare_band TEXT,
            complete INTEGER NOT NULL DEFAULT 0,
            author TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            voided_at TEXT,
            void_reason TEXT
        )""",
        "CREATE INDEX health_checks_year ON health_checks(year, resident_id, complete, voided_at)",
        "CREATE INDEX health_checks_resident ON health_checks(resident_id, check_date)",
        """CREATE TABLE health_check_versions (
            check_id TEXT NOT NULL REFERENCES health_checks(id),
            version INTEGER NOT NULL,
            data TEXT NOT NULL,
            sources TEXT NOT NULL DEFAULT '{}',
            author TEXT NOT NULL,
            saved_at TEXT NOT NULL,
            reason TEXT,
            PRIMARY KEY (check_id, version)
        )""",
        """CREATE TRIGGER health_check_versions_no_update BEFORE UPDATE ON health_check_versions
           BEGIN SELECT RAISE(ABORT, 'a saved health-check version never changes; save a correction'); END""",
        """CREATE TRIGGER health_check_versions_no_delete BEFORE DELETE ON health_check_versions
           BEGIN SELECT RAISE(ABORT, 'health-check versions are never deleted'); END""",
        """CREATE TRIGGER health_checks_no_delete BEFORE DELETE ON health_checks
           BEGIN SELECT RAISE(ABORT, 'health checks are voided with a reason, never deleted'); END""",
        """CREATE TABLE health_check_readings (
            check_id TEXT NOT NULL REFERENCES health_checks(id),
            version INTEGER NOT NULL,
            field TEXT NOT NULL,
            reading_id TEXT NOT NULL REFERENCES readings(id),
            PRIMARY KEY (check_id, version, field, reading_id)) WITHOUT ROWID""",
    )


@migration(601, "the arm a BP measurement was taken on, chosen when measuring starts")
def measuring_arm(db: sqlite_utils.Database) -> None:
    # The 健康体检表 has BP for the left and the right arm; the arm is chosen when the measuring
    # session starts (edge.core.healthcheck.prefill), so each BP reading of the session is tagged.
    db.execute("ALTER TABLE measuring_sessions ADD COLUMN arm TEXT CHECK (arm IN ('left','right'))")


@migration(602, "the check day (体检日): stations with their device, registrations, each station's calls")
def check_day(db: sqlite_utils.Database) -> None:
    run_statements(
        db,
        # a station's session: only that device's readings attach to it (edge.core.healthcheck.checkday)
        "ALTER TABLE measuring_sessions ADD COLUMN device_id TEXT",
        "CREATE INDEX measuring_device_open ON measuring_sessions(device_id, ended_at, expires_at)"
        " WHERE device_id IS NOT NULL",
        """CREATE TABLE checkday_stations (
            station TEXT PRIMARY KEY,
            device_id TEXT,
            updated_at TEXT NOT NULL)""",
        """CREATE TABLE checkday_visits (
            day TEXT NOT NULL,
            resident_id TEXT NOT NULL REFERENCES residents(id),
            seq INTEGER NOT NULL,
            registered_at TEXT NOT NULL,
            registered_by TEXT NOT NULL,
            PRIMARY KEY (day, resident_id))""",
        """CREATE TABLE checkday_steps (
            day TEXT NOT NULL,
            resident_id TEXT NOT NULL REFERENCES residents(id),
            station TEXT NOT NULL,
            called_at TEXT NOT NULL,
            done_at TEXT,
            session_id INTEGER,
            PRIMARY KEY (day, resident_id, station))""",
    )


@migration(610, "health checks are report inputs: a save draws a new report token (edge/reports/cached.py)")
def health_checks_report_inputs(db: sqlite_utils.Database) -> None:
    # The report page's 老年人健康管理率 is kept while the token is the same (531, 550); a saved,
    # corrected or voided 健康体检表 changes it in the same transaction.
    report_input_triggers(db, "health_checks", "resident_id")


ROW_TABLES = ("hospital_stays", "home_beds", "medications", "vaccinations")


@migration(611, "the health check's tables of rows: hospital stays, home beds, medications, vaccinations")
def health_check_rows(db: sqlite_utils.Database) -> None:
    # One row per saved version and row (edge/core/healthcheck/rows.py names the columns per table:
    # start_date is 入院/建床/接种日期, end_date 出院/撤床日期, name 药物名称 or the vaccine's 名称,
    # facility 医疗机构名称 or 接种机构). `text` keeps the free text a version was saved with before
    # these rows existed: each such value becomes row 1 of its table, with the text and nothing else,
    # so it stays readable (docs/health-check.md, "Rows"). Like the versions, never changed or deleted.
    run_statements(
        db,
        """CREATE TABLE health_check_rows (
            check_id TEXT NOT NULL REFERENCES health_checks(id),
            version INTEGER NOT NULL,
            field TEXT NOT NULL CHECK (field IN ('hospital_stays','home_beds','medications','vaccinations')),
            n INTEGER NOT NULL CHECK (n >= 1),
            start_date TEXT,
            end_date TEXT,
            reason TEXT,
            facility TEXT,
            record_no TEXT,
            name TEXT,
            usage TEXT,
            dose TEXT,
            duration TEXT,
            compliance TEXT CHECK (compliance IN ('1','2','3')),
            text TEXT,
            PRIMARY KEY (check_id, version, field, n)) WITHOUT ROWID""",
        """CREATE TRIGGER health_check_rows_no_update BEFORE UPDATE ON health_check_rows
           BEGIN SELECT RAISE(ABORT, 'a saved health-check row never changes; save a correction'); END""",
        """CREATE TRIGGER health_check_rows_no_delete BEFORE DELETE ON health_check_rows
           BEGIN SELECT RAISE(ABORT, 'health-check rows are never deleted'); END""",
        *(f"""INSERT INTO health_check_rows (check_id, version, field, n, text)
              SELECT check_id, version, '{name}', 1, json_extract(data, '$.{name}') FROM health_check_versions
              WHERE json_type(data, '$.{name}') = 'text' AND trim(json_extract(data, '$.{name}')) != ''"""
          for name in ROW_TABLES),
    )
