"""The hub's database schema, versioned with Alembic (docs/hub.md, "The hub's database schema").

`upgrade(engine)` brings a database to the newest revision in sync/hub/migrations/versions/ in
one transaction under a lock, so hub workers that start at the same moment migrate once:

- PostgreSQL: `pg_advisory_xact_lock(LOCK_KEY)`, held until that transaction ends. A second
  worker waits at the lock, then finds the database at head and changes nothing.
- SQLite: the transaction begins `EXCLUSIVE` (storage.py's begin hook); a second worker waits
  for it up to the connection's busy_timeout (15 s).

Both databases run DDL inside the transaction, so a migration that fails leaves nothing half done.
A database made by the hub before migrations (hub tables, no alembic_version) is recognised and
stamped at the first revision; a database this hub cannot place is refused with SchemaError,
and nothing is changed.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

# Alembic logs its plugins and each step at INFO ("Will assume non-transactional DDL", not so here:
# the caller's transaction holds it all); the hub says what an upgrade did in one line (change_text).
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from alembic.util import CommandError  # noqa: E402

SCRIPTS = "sync.hub:migrations"      # a package resource: found in the installed package, not the CWD
FIRST = "0001"                       # the schema as the hub before migrations made it
LOCK_KEY = int.from_bytes(b"cehubsch", "big")   # the advisory lock's bigint key: this schema, nothing else


class SchemaError(Exception):
    """The database is not one this hub can bring to its schema; nothing was changed."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None      # the revision in alembic_version; None: not versioned (yet)
    head: str                # the newest revision this hub ships
    pre_migrations: bool     # hub tables without alembic_version: made by a hub before migrations

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.current:
            return f"revision {self.current}" + (" (head)" if self.at_head else f", this hub's head is {self.head}")
        if self.pre_migrations:
            return f"made by a hub before schema migrations (no revision yet; an upgrade stamps it {FIRST})"
        return f"empty (no hub tables yet; an upgrade creates revision {self.head})"


def change_text(before: SchemaState, after: SchemaState) -> str:
    """What one upgrade did, in a line for county IT."""
    if before.pre_migrations:
        done = f"recognised as made by a hub before schema migrations, stamped revision {FIRST}"
        return done + (f", upgraded to {after.current}" if after.current != FIRST else "")
    if before.current is None:
        return f"created the hub's tables at revision {after.current}"
    if before.current == after.current:
        return f"at revision {after.current} (head), nothing to change"
    return f"upgraded from revision {before.current} to {after.current}"


def config(connection=None, location: str = SCRIPTS) -> Config:
    """Alembic's configuration, made here: no alembic.ini; env.py migrates `connection`.
    `location` is where the revisions are (tests pass a copy with a revision of their own)."""
    cfg = Config()
    cfg.set_main_option("script_location", location)
    cfg.attributes["connection"] = connection
    return cfg


def scripts(location: str = SCRIPTS) -> ScriptDirectory:
    return ScriptDirectory.from_config(config(location=location))


def state(engine: sa.Engine, *, location: str = SCRIPTS) -> SchemaState:
    """Where the database is, without changing it."""
    with engine.connect() as conn:
        return _state(conn, scripts(location))


def upgrade(engine: sa.Engine, revision: str = "head", *, location: str = SCRIPTS) -> tuple[SchemaState, SchemaState]:
    """Bring the database to `revision` under the lock; returns its state (before, after)."""
    script = scripts(location)
    with _locked(engine) as conn:
        before = _state(conn, script)
        _check_known(before, script)
        if before.pre_migrations:
            _adopt(conn, script, location)
        command.upgrade(config(conn, location), revision)
        return before, _state(conn, script)


@contextmanager
def _locked(engine: sa.Engine):
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(sqlite_begin="BEGIN EXCLUSIVE") as conn, conn.begin():
            yield conn
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        yield conn


def _first_tables(script: ScriptDirectory) -> sa.MetaData:
    return script.get_revision(FIRST).module.TABLES


def _state(conn: sa.Connection, script: ScriptDirectory) -> SchemaState:
    names = set(sa.inspect(conn).get_table_names())
    current = MigrationContext.configure(conn).get_current_revision() if "alembic_version" in names else None
    hub_tables = names & set(_first_tables(script).tables)
    return SchemaState(current, script.get_current_head(), pre_migrations=current is None and bool(hub_tables))


def _check_known(st: SchemaState, script: ScriptDirectory) -> None:
    if st.current is None:
        return
    try:
        known = script.get_revision(st.current)
        if known is None or known.revision != st.current:   # Alembic also takes a prefix: 0002 of 0002c
            raise CommandError(f"no revision {st.current}")
    except CommandError as e:
        raise SchemaError(f"the hub database is at schema revision {st.current}, which this clinic-edge "
                          f"(newest revision {st.head}) does not know: a newer hub has migrated it. Run that "
                          "version of clinic-edge; nothing was changed") from e


def _adopt(conn: sa.Connection, script: ScriptDirectory, location: str) -> None:
    """Stamp a pre-migration database at FIRST after checking its tables are that hub's. Tables
    an older hub had not made yet are created, as that hub's next start would have."""
    tables = _first_tables(script)
    inspector = sa.inspect(conn)
    wrong = []
    for table in tables.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        want = {c.name for c in table.columns}
        if have != want:
            wrong.append(f"{table.name} lacks {sorted(want - have)} and has {sorted(have - want)}")
        # a hub before migrations never changed a table once made, so the names identify it
    if wrong:
        raise SchemaError("the database has hub tables, but not those of a hub before schema migrations "
                          f"({'; '.join(wrong)}); nothing was changed")
    tables.create_all(conn, checkfirst=True)
    command.stamp(config(conn, location), FIRST)
