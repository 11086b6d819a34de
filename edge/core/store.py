"""The node's SQLite store: one file, WAL, synchronous=FULL, foreign keys, checked at start.
(The MQTT writer alone commits journaled readings with NORMAL and calls `make_durable()`.)

`Store.atomic()` is the one way to write: BEGIN IMMEDIATE ... COMMIT, so a writer never has to
upgrade a read lock, and a crash leaves either all of a change or none of it. sqlite-utils is
used for reading and for schema work; writes inside `atomic()` use plain SQL because
sqlite-utils' own write helpers commit on their own.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from .errors import StoreDamaged, StoreError, StoreFull
from . import disk, field_seal, migrations

log = logging.getLogger(__name__)
BUSY_TIMEOUT_MS = 15000
PAGE_SIZE = 1024
DURABLE_STATE = "store.durable_at"   # node_state: the last make_durable()


class Store:
    def __init__(self, path: str | Path, *, migrate: bool = True, check: bool = True,
                 fields: field_seal.FieldSetup | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000, factory=field_seal.FieldConnection)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Small pages: a commit rewrites whole pages in the WAL, and on an SD card every byte
            # written is wear. Takes effect only when the file is created.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            # checkpoint every ~4 MB of WAL instead of 1 MB: append-only pages touched by many
            # commits are copied into the database file fewer times
            conn.execute(f"PRAGMA wal_autocheckpoint = {4 * 1024 * 1024 // PAGE_SIZE}")
            conn.execute("PRAGMA foreign_keys = ON")
            if check:
                self._quick_check(conn)
        except sqlite3.DatabaseError as e:
            raise StoreDamaged(damaged_message(self.path, str(e))) from e
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        if migrate:
            migrations.apply(self)
        conn.suite = _node_suite(conn, fields)
        # the field key (docs/field-encryption.md): found from node_state, made once when asked for
        try:
            field_seal.attach(conn, fields)
        except field_seal.FieldKeyError:
            conn.close()
            raise
        if conn.fields:
            conn.execute("PRAGMA secure_delete = ON")   # freed pages of sealed rows are zeroed

    @property
    def fields(self) -> "field_seal.FieldSeal | None":
        return self.conn.fields

    def _quick_check(self, conn: sqlite3.Connection) -> None:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise StoreDamaged(damaged_message(self.path, "; ".join(rows[:3])))

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One transaction. Nested calls join the outer one."""
        with self._lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as e:
                if self.conn.in_transaction:   # SQLite may have rolled back already (disk full)
                    self.conn.execute("ROLLBACK")
                if disk.is_full(e):
                    raise StoreFull(f"the data partition holding {self.path} is full; nothing was written "
                                    f"({e})") from e
                raise

    def make_durable(self) -> None:
        """Put every commit made so far, by any connection, on disk. For what was committed with
        synchronous=NORMAL (the MQTT writer, docs/mqtt.md, "What a reading writes"): call it
        before anything read from the store leaves the box or lets the broker forget a reading.
        It commits one small change with FULL, whose fsync of the WAL covers every frame before
        it (a checkpoint in NORMAL syncs the database file before it reuses the WAL). Not by
        fsyncing a descriptor of our own: closing any descriptor of the file drops every POSIX
        lock this process holds on it, SQLite's included (sqlite.org/howtocorrupt.html, 2.2)."""
        with self._lock:
            mode = self.conn.execute("PRAGMA synchronous").fetchone()[0]
            self.conn.execute("PRAGMA synchronous = FULL")
            try:
                at = datetime.now(timezone.utc).isoformat()
                with self.atomic() as conn:
                    conn.execute("INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key)"
                                 " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                                 (DURABLE_STATE, at, at))
            finally:
                self.conn.execute(f"PRAGMA synchronous = {mode}")

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.conn.execute(sql, params)]

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row else None

    def scalar(self, sql: str, params: Any = ()) -> Any:
        with self._lock:
            row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def integrity_check(self) -> list[str]:
        return [r[0] for r in self.conn.execute("PRAGMA integrity_check")]

    def backup(self, dest: str | Path, *, now: datetime | None = None) -> Path:
        """Online backup (SQLite's backup API): consistent even while others write. Into a folder
        (a USB drive) it writes a new file named by `now` (the node's clock), which is then needed."""
        dest = Path(dest)
        if dest.is_dir() or not dest.suffix:  # a folder (USB drive): a new dated file in it
            if now is None:
                raise TypeError("a backup into a folder is named by its time: pass now=node.clock.now()")
            stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            dest = dest / f"{self.path.stem}-{stamp}{self.path.suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        tmp.unlink(missing_ok=True)
        try:
            target = sqlite3.connect(tmp)
            with target:
                self.conn.backup(target, pages=1024)
            ok = [r[0] for r in target.execute("PRAGMA integrity_check")] == ["ok"]
            target.close()
        except sqlite3.Error as e:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"backup to {dest} failed: {e}") from e
        if not ok:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"backup to {dest} failed its integrity check; nothing was written")
        tmp.replace(dest)
        return dest

    def close(self) -> None:
        self.conn.close()


def processes_using(path: str | Path) -> list[int]:
    """Other processes that have the database (or its WAL) open, found through /proc: a restore
    must not swap the file under a running service. Processes of other users whose /proc entries
    cannot be read are not seen (the services and `restore` run as the same user)."""
    path = Path(os.path.realpath(path))
    names = {str(path), f"{path}-wal", f"{path}-shm"}
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) in names for fd in (proc / "fd").iterdir()):
                found.append(int(proc.name))
        except OSError:
            continue
    return sorted(found)


SUITE_STATE = "crypto.suite"


def _node_suite(conn: sqlite3.Connection, setup: field_seal.FieldSetup | None) -> str | None:
    """The node's `[crypto] suite`: a store opened by the node (with its setup) records it in
    node_state, so the other stores on the file (the web service's, the drivers') hash their audit
    entries with it too (docs/crypto-suites.md)."""
    try:
        row = conn.execute("SELECT value FROM node_state WHERE key = ?", (SUITE_STATE,)).fetchone()
    except sqlite3.OperationalError:   # not migrated yet
        return setup.suite if setup else None
    if setup is None or (row and row[0] == setup.suite):
        return row[0] if row else None
    try:
        conn.execute("INSERT INTO node_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
                     " SET value = excluded.value, updated_at = excluded.updated_at",
                     (SUITE_STATE, setup.suite, datetime.now(timezone.utc).isoformat()))
    except sqlite3.OperationalError:   # a read-only file: this store still uses the configured suite
        pass
    return setup.suite


def damaged_message(path: Path, detail: str) -> str:
    return (f"the database {path} is damaged ({detail}). Stop the clinic-edge services and restore "
            f"the latest backup: `clinic-edge restore BACKUP_FILE` (backups are in "
            f"{path.parent / 'backups'} and on the USB drive), then start again.")
