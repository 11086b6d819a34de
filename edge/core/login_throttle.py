"""The login throttle: per (user name, client address), counted before the password is checked.

Each attempt is admitted or refused inside one write transaction (BEGIN IMMEDIATE) before any
Argon2 work, so parallel guesses cannot all read the same count: the first `FREE_TRIES` failures
for a name from one address are checked, then that pair is refused without a check for
`FIRST_DELAY`, doubling after every further failure up to `LONGEST_DELAY`. The same counting over
all names from one address (`ADDRESS_TRIES`) stops one machine trying many names. A success
resets both counts. Because the count is per address, guesses from elsewhere on the LAN never
lock the clinic PC out; the address is the socket's peer (REMOTE_ADDR), see docs/security.md.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from .reading import parse_iso, utc_iso

FREE_TRIES = 5
ADDRESS_TRIES = 20
FIRST_DELAY = timedelta(minutes=1)
LONGEST_DELAY = timedelta(hours=1)
FORGET = timedelta(hours=24)      # failures with no attempt for this long are forgotten
ANY_NAME = ""


def delay(failures: int, free: int) -> timedelta | None:
    """How long a pair with `failures` admitted attempts is refused (None: not at all)."""
    if failures < free:
        return None
    return min(FIRST_DELAY * 2 ** min(failures - free, 20), LONGEST_DELAY)


def admit(conn: sqlite3.Connection, username: str, address: str, *, now: datetime) -> timedelta | None:
    """Count one attempt, inside the caller's write transaction. None: go on and check the password;
    otherwise how long to wait (nothing was counted)."""
    conn.execute("DELETE FROM login_throttle WHERE last_at < ? AND (blocked_until IS NULL OR blocked_until < ?)",
                 (utc_iso(now - FORGET), utc_iso(now)))
    pairs = [((username, address), FREE_TRIES), ((ANY_NAME, address), ADDRESS_TRIES)]
    rows = [_row(conn, key) for key, _ in pairs]
    waits = [until - now for until in (_blocked_until(r) for r in rows) if until and until > now]
    if waits:
        return max(waits)
    for (key, free), row in zip(pairs, rows):
        failures = (row["failures"] if row else 0) + 1
        wait = delay(failures, free)
        conn.execute(
            "INSERT INTO login_throttle (username, address, failures, blocked_until, last_at, checked)"
            " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (username, address) DO UPDATE SET"
            " failures = excluded.failures, blocked_until = excluded.blocked_until,"
            " last_at = excluded.last_at, checked = checked + 1",
            (*key, failures, utc_iso(now + wait) if wait else None, utc_iso(now)))
    return None


def succeeded(conn: sqlite3.Connection, username: str, address: str) -> None:
    conn.execute("UPDATE login_throttle SET failures = 0, blocked_until = NULL"
                 " WHERE address = ? AND username IN (?, ?)", (address, username, ANY_NAME))


def lift(conn: sqlite3.Connection, username: str) -> None:
    """A new password from the administrator lifts every lock-out of that name."""
    conn.execute("UPDATE login_throttle SET failures = 0, blocked_until = NULL WHERE username = ?", (username,))


def checks(conn: sqlite3.Connection, username: str, address: str) -> int:
    """Password checks made for this name from this address (what a flood actually got evaluated)."""
    row = _row(conn, (username, address))
    return row["checked"] if row else 0


def _row(conn: sqlite3.Connection, key: tuple[str, str]):
    return conn.execute("SELECT * FROM login_throttle WHERE username = ? AND address = ?", key).fetchone()


def _blocked_until(row) -> datetime | None:
    return parse_iso(row["blocked_until"]) if row and row["blocked_until"] else None
