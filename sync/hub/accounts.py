"""County IT's accounts for the hub's pages: roles viewer (sees the dashboard and the county
view), county (the 基层卫生科: the county view and its de-identified export, docs/county.md) and
admin (all of that, registers nodes and sets each clinic's township). The same hashing and rules as the node's accounts (edge.core.accounts:
Argon2id, user names, password length, generated passwords); kept in the hub's database so every
worker sees them.

Failed log-ins are counted per (user, address) and per address, and the attempt is counted
*before* the password is checked, so parallel guesses cannot get more than the limit evaluated,
and a guesser elsewhere cannot lock the real user out of their own address.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from edge.core import accounts as rules
from edge.core.errors import ValidationError
from .storage import HubStore, login_failures, now_iso, users

ROLES = ("viewer", "county", "admin")
PER_ADDRESS = 4 * rules.MAX_FAILURES
WINDOW = timedelta(minutes=15)   # failures counted over this window (per user+address, per address)


@dataclass(frozen=True)
class HubUser:
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def may_export_deidentified(self) -> bool:
        return self.role in ("county", "admin")


def add(store: HubStore, username: str, password: str, *, role: str, now: datetime) -> HubUser:
    username = (username or "").strip().lower()
    if not rules.USERNAME.fullmatch(username):
        raise ValidationError("a user name has 2-32 lower-case letters, digits, '.', '_' or '-'", field="username")
    if role not in ROLES:
        raise ValidationError("the role must be viewer, county or admin", field="role")
    hashed = rules.hash_password(password)
    with store.begin() as c:
        if c.execute(sa.select(users.c.username).where(users.c.username == username)).first():
            raise ValidationError(f"the user name {username} is taken", field="username")
        c.execute(users.insert().values(username=username, role=role, password_hash=hashed, created_at=now_iso(now)))
    return HubUser(username, role)


def get(store: HubStore, username: str) -> HubUser | None:
    with store.read() as c:
        row = c.execute(sa.select(users).where(users.c.username == username)
                        .where(users.c.disabled_at.is_(None))).mappings().first()
    return HubUser(row["username"], row["role"]) if row else None


def authenticate(store: HubStore, username: str, password: str, *, address: str, now: datetime) -> HubUser:
    """The user, or rules.LoginRefused (LoginThrottled after too many failures)."""
    username = (username or "").strip().lower()[:64]
    keys = {f"user:{username}|addr:{address}"[:128]: rules.MAX_FAILURES, f"addr:{address}"[:128]: PER_ADDRESS}
    since = now_iso(now - WINDOW)
    with store.begin() as c:   # count this attempt first: parallel guesses each see the others
        c.execute(login_failures.delete().where(login_failures.c.at <= since))
        ids = [c.execute(login_failures.insert().values(key=k, at=now_iso(now))).inserted_primary_key[0]
               for k in keys]
    with store.read() as c:
        for key, limit in keys.items():
            n = c.execute(sa.select(sa.func.count()).select_from(login_failures).where(login_failures.c.key == key)
                          .where(login_failures.c.at > since)).scalar()
            if n > limit:
                raise rules.LoginThrottled("too many failed log-ins from this address; wait 15 minutes", WINDOW)
        row = c.execute(sa.select(users).where(users.c.username == username)).mappings().first()
    if not rules.password_matches(row["password_hash"] if row else None, password) or row["disabled_at"]:
        raise rules.LoginRefused("wrong user name or password, or the account is disabled")
    with store.begin() as c:
        c.execute(login_failures.delete().where(login_failures.c.id.in_(ids)))
        if rules.needs_rehash(row["password_hash"]):
            c.execute(users.update().where(users.c.username == username)
                      .values(password_hash=rules.hash_password(password)))
    return HubUser(row["username"], row["role"])


def set_password(store: HubStore, username: str, password: str) -> None:
    hashed = rules.hash_password(password)
    with store.begin() as c:
        done = c.execute(users.update().where(users.c.username == username).values(password_hash=hashed))
        if done.rowcount != 1:
            raise ValidationError(f"no hub user named {username}", field="username")
        c.execute(login_failures.delete().where(login_failures.c.key.like(f"user:{username}|%")))
