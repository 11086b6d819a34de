"""Workbench tables (versions 100-199): accounts, resident details and search keys,
measuring sessions, the readings inbox and voiding."""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements as _run


@migration(100, "user accounts and login throttle")
def accounts(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            display_name TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL CHECK (role IN ('doctor', 'admin')),
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            password_changed_at TEXT NOT NULL,
            disabled_at TEXT
        )""",
        """CREATE TABLE login_failures (
            key TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX login_failures_key ON login_failures(key, at)",
    )


@migration(101, "resident details, search keys and health-record serials")
def residents(db: sqlite_utils.Database) -> None:
    columns = [
        "name_initials TEXT NOT NULL DEFAULT ''",     # pinyin initials of the first reading (zs)
        "id_number_rev TEXT",                          # reversed: 'last digits' becomes a prefix
        "phone_rev TEXT",
        "htn INTEGER NOT NULL DEFAULT 0",              # hypertension enrolment
        "htn_diagnosed_on TEXT",
        "t2dm INTEGER NOT NULL DEFAULT 0",             # type 2 diabetes enrolment
        "t2dm_diagnosed_on TEXT",
        "contract_signed INTEGER NOT NULL DEFAULT 0",  # family-doctor contract (家庭医生签约)
        "created_by TEXT",
        "updated_by TEXT",
    ]
    _run(db, *[f"ALTER TABLE residents ADD COLUMN {c}" for c in columns])
    _run(
        db,
        # every pinyin reading of a name with polyphonic characters (曾 z/c, 单 s/d) is a search key
        """CREATE TABLE resident_initials (
            initials TEXT NOT NULL,
            resident_id TEXT NOT NULL REFERENCES residents(id),
            PRIMARY KEY (initials, resident_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX residents_name ON residents(name)",
        "CREATE INDEX residents_id_rev ON residents(id_number_rev)",
        "CREATE INDEX residents_phone ON residents(phone)",
        "CREATE INDEX residents_phone_rev ON residents(phone_rev)",
    )


@migration(102, "measuring sessions, readings inbox and voiding")
def measuring(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """CREATE TABLE measuring_sessions (
            id INTEGER PRIMARY KEY,
            resident_id TEXT NOT NULL REFERENCES residents(id),
            started_by TEXT NOT NULL,
            started_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            ended_at TEXT
        )""",
        "CREATE INDEX measuring_open ON measuring_sessions(ended_at, expires_at)",
        "ALTER TABLE readings ADD COLUMN assigned_by TEXT",
        "ALTER TABLE readings ADD COLUMN assigned_at TEXT",
        "ALTER TABLE readings ADD COLUMN dismissed_at TEXT",
        "ALTER TABLE readings ADD COLUMN dismiss_reason TEXT",
        "ALTER TABLE readings ADD COLUMN voided_at TEXT",
        "ALTER TABLE readings ADD COLUMN void_reason TEXT",
        "ALTER TABLE readings ADD COLUMN status_before_void TEXT",
        # the inbox: readings nobody has claimed yet
        "CREATE INDEX readings_inbox ON readings(resident_id, dismissed_at, receive_time)",
    )


@migration(110, "session generations and a login throttle per (name, address)")
def sessions_and_throttle(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # bumped on logout, password change, disable and "log out everywhere": a session cookie
        # made under an older generation is refused (edge/core/accounts.py)
        "ALTER TABLE users ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0",
        # one row per (user name, client address); user name '' = every name from that address
        """CREATE TABLE login_throttle (
            username TEXT NOT NULL,
            address TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,   -- attempts admitted since the last success
            blocked_until TEXT,                    -- refused without a password check until then
            last_at TEXT NOT NULL,
            checked INTEGER NOT NULL DEFAULT 0,    -- password checks (Argon2 runs) ever made
            PRIMARY KEY (username, address)
        ) WITHOUT ROWID""",
        "DROP TABLE login_failures",               # counted per name only: a lock-out weapon
    )


@migration(103, "a measuring session belongs to one visit: how it ended, the readings it took")
def measuring_visit(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # saved (the visit's form was saved), switched (measuring someone else), stopped (结束测量);
        # a session past expires_at with no end_reason timed out
        "ALTER TABLE measuring_sessions ADD COLUMN end_reason TEXT",
        "ALTER TABLE measuring_sessions ADD COLUMN followup_id TEXT",
        "CREATE INDEX measuring_resident ON measuring_sessions(resident_id, started_at)",
        # the session that attached the reading to its resident (NULL: bound device, patient id, inbox)
        "ALTER TABLE readings ADD COLUMN session_id INTEGER",
        "CREATE INDEX readings_session ON readings(session_id) WHERE session_id IS NOT NULL",
    )


@migration(125, "pinyin initials recomputed: each character with all its readings, a surname read as one")
def initials_by_character(db: sqlite_utils.Database) -> None:
    # Before, pypinyin's phrase tables chose one reading for characters that form a word (解放 gave
    # only "jf", so 解放 the resident, Xiè Fàng, was not found by "xf"), and a surname came first
    # in its everyday reading (单 dān). edge/core/resident_search.py `initials` now reads each
    # character alone, with every reading, and a surname as a surname (edge/core/surnames.py).
    # pypinyin is imported only when there is a resident to recompute (a new box: never).
    from .resident_search import write_keys

    for rid, name in db.execute("SELECT id, name FROM residents").fetchall():
        db.execute("UPDATE residents SET name_initials = ? WHERE id = ?", (write_keys(db.conn, rid, name), rid))
