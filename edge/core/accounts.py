"""User accounts: doctors and admins, Argon2id password hashes, a login throttle, session generations.

Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters); a hash made with older
parameters is upgraded at the next successful login. Failed logins are throttled per (name,
client address) before the password is checked (edge/core/login_throttle.py). Every account has a
session generation that the web sessions carry; logout, a new password, disabling and "log out
everywhere" bump it, which ends every session made before.
"""
from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from . import audit, login_throttle
from .errors import CoreError, NotFound, ValidationError
from .reading import utc_iso

ROLES = ("doctor", "admin")
USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{1,31}")
MIN_PASSWORD = 8
MAX_FAILURES = login_throttle.FREE_TRIES
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the user does not exist, so both cases take the same time."""
    return _hasher.hash("not-a-real-password")


def N_(message: str) -> str:
    return message


class LoginRefused(CoreError):
    """Wrong name or password, a disabled account, or too many attempts (the message says which)."""


class LoginThrottled(LoginRefused):
    def __init__(self, message: str, wait: timedelta):
        super().__init__(message)
        self.minutes = max(1, -(-int(wait.total_seconds()) // 60))   # rounded up


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    disabled: bool
    session_generation: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _user(row) -> User:
    return User(row["id"], row["username"], row["display_name"], row["role"], row["disabled_at"] is not None,
                row["session_generation"])


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError(N_("A password needs at least 8 characters."), field="password")
    return password


def add(store, username: str, password: str, *, role: str = "doctor", display_name: str = "",
        now: datetime, actor: str = "system") -> User:
    username = (username or "").strip().lower()
    if not USERNAME.fullmatch(username):
        raise ValidationError(N_("A user name has 2-32 lower-case letters, digits, '.', '_' or '-'."),
                              field="username")
    if role not in ROLES:
        raise ValidationError(N_("The role must be doctor or admin."), field="role")
    check_password(password)
    with store.atomic() as conn:
        if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise ValidationError(N_("This user name is taken."), field="username")
        at = utc_iso(now)
        cur = conn.execute("INSERT INTO users (username, display_name, role, password_hash, created_at,"
                           " password_changed_at) VALUES (?,?,?,?,?,?)",
                           (username, display_name.strip(), role, _hasher.hash(password), at, at))
        audit.append(conn, actor=actor, action="user.add", entity="user", entity_id=username, at=now,
                     after={"username": username, "display_name": display_name, "role": role})
    return get(store, cur.lastrowid)


def set_password(store, username: str, password: str, *, now: datetime, actor: str = "system") -> None:
    check_password(password)
    with store.atomic() as conn:
        cur = conn.execute("UPDATE users SET password_hash = ?, password_changed_at = ?,"
                           " session_generation = session_generation + 1 WHERE username = ?",
                           (_hasher.hash(password), utc_iso(now), username))
        if cur.rowcount == 0:
            raise NotFound(f"no user named {username}")
        login_throttle.lift(conn, username.lower())
        audit.append(conn, actor=actor, action="user.passwd", entity="user", entity_id=username, at=now)


def set_disabled(store, username: str, disabled: bool, *, now: datetime, actor: str = "system") -> None:
    with store.atomic() as conn:
        row = conn.execute("SELECT disabled_at FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            raise NotFound(f"no user named {username}")
        conn.execute("UPDATE users SET disabled_at = ?, session_generation = session_generation + ?"
                     " WHERE username = ?", (utc_iso(now) if disabled else None, int(disabled), username))
        audit.append(conn, actor=actor, action="user.disable" if disabled else "user.enable", entity="user",
                     entity_id=username, at=now, before={"disabled": row[0] is not None},
                     after={"disabled": disabled})


def end_sessions(store, username: str, *, now: datetime, actor: str | None = "system") -> None:
    """Log the user out everywhere: every session cookie made so far stops working.
    `actor=None` for the user's own logout (not audited: it changes nothing but the sessions)."""
    with store.atomic() as conn:
        cur = conn.execute("UPDATE users SET session_generation = session_generation + 1 WHERE username = ?",
                           (username,))
        if cur.rowcount == 0:
            raise NotFound(f"no user named {username}")
        if actor is not None:
            audit.append(conn, actor=actor, action="user.logout_all", entity="user", entity_id=username, at=now)


def get(store, user_id: int) -> User | None:
    row = store.one("SELECT * FROM users WHERE id = ?", (user_id,))
    return _user(row) if row else None


def by_username(store, username: str) -> User | None:
    row = store.one("SELECT * FROM users WHERE username = ?", ((username or "").strip(),))
    return _user(row) if row else None


def all_users(store) -> list[User]:
    return [_user(r) for r in store.query("SELECT * FROM users ORDER BY username")]


def authenticate(store, username: str, password: str, *, address: str = "", now: datetime) -> User:
    """The user, or LoginRefused. The attempt is counted against (name, address) before the check."""
    username = (username or "").strip().lower()
    with store.atomic() as conn:
        wait = login_throttle.admit(conn, username, address, now=now)
    if wait is not None:
        raise LoginThrottled(N_("Too many failed logins from this computer. Try again in %(minutes)d minutes, "
                                "or ask the administrator to reset the password."), wait)
    row = store.one("SELECT * FROM users WHERE username = ?", (username,))
    ok = _verify(row["password_hash"] if row else _dummy_hash(), password or "")
    if not ok or row is None:
        raise LoginRefused(N_("Wrong user name or password."))
    if row["disabled_at"]:
        raise LoginRefused(N_("This account is disabled."))
    with store.atomic() as conn:
        login_throttle.succeeded(conn, username, address)
        if _hasher.check_needs_rehash(row["password_hash"]):
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), row["id"]))
    return _user(row)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A random password that is easy to read aloud and type (no 0/O, 1/l)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))


# ---- shared with the county hub's accounts (sync/hub/accounts.py): the same hashing and rules ----

def hash_password(password: str) -> str:
    """An Argon2id hash of a password that passed check_password."""
    return _hasher.hash(check_password(password))


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash (no such user) it still spends an Argon2 check."""
    return _verify(password_hash or _dummy_hash(), password or "") and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
