"""The hub's storage: SQLAlchemy Core over `sqlite:///PATH` or `postgresql://...`.

Everything a worker needs lives here (nodes, enrollment codes, seen nonces, partial uploads,
batches with their receipts, records, downlink), so any number of stateless workers can serve
the same county behind a load balancer. Records are stored idempotently by
(node, kind, record_id, version). The tables are in sync/hub/tables.py; the database gets them
from the Alembic revisions in migrations/versions/ (sync/hub/schema.py), which HubStore applies
when it opens the database.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import schema
from .tables import (  # noqa: F401  the tables, also as storage.<name> for the rest of the hub
    audit_heads, batches, chunks, codes, downlink, login_failures, meta, node_keys, nodes, nonces, places, records,
    refusals, settings, users)

RECORD_COLUMNS = ("node", "kind", "record_id", "version", "payload", "digest", "batch_id", "day", "received_at")
# every new record of a batch as one JSON array, one statement whatever the batch's size (docs/hub.md)
INSERT_JSON = sa.text(
    f"INSERT INTO hub_records ({', '.join(RECORD_COLUMNS)}) SELECT {', '.join(RECORD_COLUMNS)} "
    "FROM json_populate_recordset(NULL::hub_records, CAST(:rows AS json)) "
    "ON CONFLICT (node, kind, record_id, version) DO NOTHING RETURNING kind, record_id, version")
# the nonce remembered and the node's last contact set, one statement (a replay: no row, no change)
REMEMBER_NONCE = sa.text(
    "WITH seen AS (INSERT INTO hub_nonces (node, nonce, seen_at) VALUES (:node, :nonce, :at) "
    "ON CONFLICT (node, nonce) DO NOTHING RETURNING node) "
    "UPDATE hub_nodes SET last_contact = :at FROM seen WHERE hub_nodes.name = seen.node RETURNING seen.node")
_HEADS = ("(SELECT coalesce(max(seq), 0) FROM hub_downlink WHERE node = :node), "
          "(SELECT coalesce(max(seq), 0) FROM hub_downlink WHERE node = '*')")
DOWNLINK_HEAD = {False: sa.text(f"SELECT greatest({_HEADS})"), True: sa.text(f"SELECT max({_HEADS})")}


def now_iso(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def suite_of_text(pubkey: str) -> str:
    from sync import signing

    return signing.text_suite(pubkey)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


# A pooled PostgreSQL connection idle this long is pinged before use (one round trip), so one
# dropped while the hub was quiet (a database restart) is replaced, not handed to a request.
IDLE_PING = 10.0   # s


class HubStore:
    def __init__(self, url: str, *, pool_size: int = 10, upgrade: bool = True, idle_ping: float = IDLE_PING,
                 monotonic: Callable[[], float] = time.monotonic):
        """Open the hub's database; with `upgrade` bring its schema to head first (`migrated`
        is then the schema state (before, after); schema.SchemaError if it cannot be)."""
        kw: dict[str, Any] = {"future": True}
        if url.startswith("postgresql"):
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://"):]
            kw.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine = sa.create_engine(url, **kw)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if not self.is_sqlite:
            ping_when_idle(self.engine, idle_ping, monotonic)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self.migrated = schema.upgrade(self.engine) if upgrade else None
        # Reads run in autocommit on PostgreSQL: one round trip for the SELECT, where a transaction
        # costs BEGIN, SELECT and the ROLLBACK when the connection goes back to the pool. Under READ
        # COMMITTED each statement sees its own snapshot either way (docs/hub.md, "Many nodes at once").
        self._reader = self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def _insert(self, table: sa.Table):
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)

    def begin(self):
        return self.engine.begin()

    def read(self):
        """A connection for reading only."""
        return self._reader.connect()

    # ---- nodes and enrollment -----------------------------------------------------------
    def add_node(self, name: str, code: str, *, now: datetime, ttl: timedelta) -> None:
        with self.begin() as c:
            c.execute(self._insert(nodes).values(name=name, created_at=now_iso(now))
                      .on_conflict_do_nothing(index_elements=["name"]))
            c.execute(codes.insert().values(code_hash=code_hash(code), node=name, created_at=now_iso(now),
                                            expires_at=now_iso(now + ttl)))

    def node(self, name: str) -> dict[str, Any] | None:
        with self.read() as c:
            row = c.execute(sa.select(nodes).where(nodes.c.name == name)).mappings().first()
        return dict(row) if row else None

    def all_nodes(self) -> list[dict[str, Any]]:
        with self.read() as c:
            return [dict(r) for r in c.execute(sa.select(nodes).order_by(nodes.c.name)).mappings()]

    def redeem(self, code: str, pubkey: str, *, now: datetime) -> str:
        """Spend a one-time code on a public key; returns the node name. KeyError(reason) if refused."""
        with self.begin() as c:
            row = c.execute(sa.select(codes).where(codes.c.code_hash == code_hash(code))
                            .with_for_update()).mappings().first()
            if row is None:
                raise KeyError("unknown enrollment code")
            if row["used_at"]:
                raise KeyError("this enrollment code was already used")
            if row["expires_at"] < now_iso(now):
                raise KeyError("this enrollment code has expired; ask county IT for a new one")
            done = c.execute(codes.update().where(codes.c.code_hash == row["code_hash"])
                             .where(codes.c.used_at.is_(None)).values(used_at=now_iso(now)))
            if done.rowcount != 1:
                raise KeyError("this enrollment code was already used")
            old = c.execute(sa.select(nodes.c.pubkey).where(nodes.c.name == row["node"])).scalar()
            if old and old != pubkey:   # re-enrolled: what it signed before still verifies
                c.execute(self._insert(node_keys).values(node=row["node"], pubkey=old, suite=suite_of_text(old),
                                                         retired_at=now_iso(now))
                          .on_conflict_do_nothing(index_elements=["node", "pubkey"]))
            c.execute(nodes.update().where(nodes.c.name == row["node"])
                      .values(pubkey=pubkey, enrolled_at=now_iso(now)))
            return row["node"]

    def old_keys(self, node: str, suite: str) -> list[str]:
        """The node's keys in `suite` from before its last re-enrollment, newest first."""
        with self.read() as c:
            return list(c.execute(sa.select(node_keys.c.pubkey).where(node_keys.c.node == node)
                                  .where(node_keys.c.suite == suite).order_by(node_keys.c.retired_at.desc()))
                        .scalars())

    def add_refusal(self, node: str, what: str, reason: str, *, now: datetime) -> None:
        with self.begin() as c:
            c.execute(refusals.insert().values(node=node[:64], what=what, reason=reason, at=now_iso(now)))

    def refusal_counts(self) -> dict[str, int]:
        """Refused signatures per node (what `hub node list` and the tests read)."""
        with self.read() as c:
            return dict(c.execute(sa.select(refusals.c.node, sa.func.count()).group_by(refusals.c.node)).all())

    def refusal_reasons(self, node: str) -> list[str]:
        with self.read() as c:
            return list(c.execute(sa.select(refusals.c.reason).where(refusals.c.node == node)
                                  .order_by(refusals.c.id)).scalars())

    def remember_nonce(self, node: str, nonce: str, *, now: datetime) -> bool:
        """True the first time a node uses a nonce, and its last contact is now (one transaction:
        on PostgreSQL one statement in autocommit, one round trip, docs/hub.md "Many nodes at
        once"); False for a replay."""
        if not self.is_sqlite:
            with self.read() as c:
                return c.execute(REMEMBER_NONCE, {"node": node, "nonce": nonce, "at": now_iso(now)}).first() is not None
        with self.begin() as c:
            res = c.execute(self._insert(nonces).values(node=node, nonce=nonce, seen_at=now_iso(now))
                            .on_conflict_do_nothing(index_elements=["node", "nonce"]).returning(nonces.c.nonce))
            if res.first() is None:
                return False
            c.execute(nodes.update().where(nodes.c.name == node).values(last_contact=now_iso(now)))
            return True

    def prune(self, *, nonces_before: datetime, chunks_before: datetime) -> None:
        """Forget nonces and abandoned partial uploads older than the given hub times."""
        with self.begin() as c:
            c.execute(nonces.delete().where(nonces.c.seen_at < now_iso(nonces_before)))
            c.execute(chunks.delete().where(chunks.c.at < now_iso(chunks_before)))

    def touch(self, node: str, *, now: datetime, status: str | None = None) -> None:
        values: dict[str, Any] = {"last_contact": now_iso(now)}
        if status is not None:
            values["status"] = status
        with (self.begin() if self.is_sqlite else self.read()) as c:    # one statement: atomic by itself
            c.execute(nodes.update().where(nodes.c.name == node).values(**values))

    # ---- uploads --------------------------------------------------------------------------
    def batch_receipt(self, node: str, batch_id: str) -> str | None:
        with self.read() as c:
            return c.execute(sa.select(batches.c.receipt).where(batches.c.node == node)
                             .where(batches.c.batch_id == batch_id)).scalar()

    def received_offset(self, node: str, batch_id: str, total: int) -> int:
        with self.read() as c:
            rows = c.execute(sa.select(chunks.c.offset, sa.func.length(chunks.c.data), chunks.c.total)
                             .where(chunks.c.node == node).where(chunks.c.batch_id == batch_id)
                             .order_by(chunks.c.offset)).all()
        have = 0
        for off, n, tot in rows:
            if tot != total:
                return 0   # a different upload under the same id: start again
            if off == have:
                have += n
        return have

    def add_chunk(self, node: str, batch_id: str, offset: int, data: bytes, total: int, *, now: datetime) -> None:
        with self.begin() as c:
            c.execute(self._insert(chunks).values(node=node, batch_id=batch_id, offset=offset, data=data,
                                                  total=total, at=now_iso(now))
                      .on_conflict_do_nothing(index_elements=["node", "batch_id", "offset"]))

    def assembled(self, node: str, batch_id: str, total: int) -> bytes:
        with self.read() as c:
            rows = c.execute(sa.select(chunks.c.offset, chunks.c.data).where(chunks.c.node == node)
                             .where(chunks.c.batch_id == batch_id).where(chunks.c.total == total)
                             .order_by(chunks.c.offset)).all()
        out = bytearray()
        for off, data in rows:
            if off == len(out):
                out += data
        return bytes(out[:total])

    def drop_chunks(self, c, node: str, batch_id: str) -> None:
        c.execute(chunks.delete().where(chunks.c.node == node).where(chunks.c.batch_id == batch_id))

    def existing_digests(self, c, node: str, keys: Iterable[tuple[str, str, int]]) -> dict[tuple, str]:
        by_kind: dict[str, set[str]] = {}
        for kind, rid, _version in keys:
            by_kind.setdefault(kind, set()).add(rid)
        out: dict[tuple, str] = {}
        for kind, rids in by_kind.items():   # (node, kind, record_id): the primary key's prefix, not a scan
            ids = sorted(rids)
            for i in range(0, len(ids), 400):
                rows = c.execute(sa.select(records.c.kind, records.c.record_id, records.c.version, records.c.digest)
                                 .where(records.c.node == node).where(records.c.kind == kind)
                                 .where(records.c.record_id.in_(ids[i:i + 400]))).all()
                out.update({(r[0], r[1], r[2]): r[3] for r in rows})
        return out

    def insert_records(self, c, rows: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
        """Store new records, a record already there (same key) left as it is. On PostgreSQL one
        INSERT ... SELECT FROM json_populate_recordset ON CONFLICT DO NOTHING for the whole batch:
        a list of rows passed as parameters is one INSERT per record (the driver's executemany),
        and a multi-row VALUES is SQL compiled anew for every batch size (docs/hub.md). Returns the
        (kind, record_id, version) of the rows it inserted. Rows go in key order, so two workers
        inserting overlapping batches take their row locks in one order and cannot deadlock."""
        if not rows:
            return set()
        rows = sorted(rows, key=lambda r: (r["kind"], r["record_id"], r["version"]))
        if self.is_sqlite:     # in-process, and a writer has the file to itself (BEGIN IMMEDIATE)
            c.execute(self._insert(records).on_conflict_do_nothing(
                index_elements=["node", "kind", "record_id", "version"]), rows)
            return {(r["kind"], r["record_id"], r["version"]) for r in rows}
        done = c.execute(INSERT_JSON, {"rows": json.dumps([{k: r[k] for k in RECORD_COLUMNS} for r in rows],
                                                          ensure_ascii=False)})
        return {(k, i, v) for k, i, v in done}

    # ---- downlink -----------------------------------------------------------------------------
    def put_downlink(self, node: str, kind: str, record_id: str, version: int, payload: str,
                     *, now: datetime) -> int:
        with self.begin() as c:
            res = c.execute(downlink.insert().values(node=node, kind=kind, record_id=record_id, version=version,
                                                     payload=payload, created_at=now_iso(now)))
            return res.inserted_primary_key[0]

    def downlink_page(self, node: str, cursor: int, limit: int) -> list[dict[str, Any]]:
        with self.read() as c:
            rows = c.execute(sa.select(downlink).where(downlink.c.seq > cursor)
                             .where(downlink.c.node.in_([node, "*"])).order_by(downlink.c.seq).limit(limit))
            return [dict(r) for r in rows.mappings()]

    def downlink_head(self, node: str) -> int:
        """The newest downlink cursor for this node (0: none yet), which every signed answer carries
        so a node whose cursor is there skips the pull (issue 17.4)."""
        # two index look-ups (the newest row for this node, the newest for every node), not a scan of
        # every row either ever had; SQLite's two-argument max() is PostgreSQL's greatest(). Text SQL
        # made once, as it is asked on every signed answer: built with sa.select each time, its
        # subqueries cost more Python than any other read (docs/hub.md)
        with self.read() as c:
            return c.execute(DOWNLINK_HEAD[self.is_sqlite], {"node": node}).scalar() or 0

    def high_water(self, c, node: str) -> int:
        """The highest outbox seq any stored batch of this node reached (hub_batches_high)."""
        return c.execute(sa.select(sa.func.max(batches.c.seq_to)).where(batches.c.node == node)).scalar() or 0

    def setting(self, key: str, make) -> str:
        """A hub-wide value, made by `make()` the first time (every worker then reads the same one)."""
        with self.begin() as c:
            c.execute(self._insert(settings).values(key=key, value=make())
                      .on_conflict_do_nothing(index_elements=["key"]))
            return c.execute(sa.select(settings.c.value).where(settings.c.key == key)).scalar()

    # ---- audit anchors ------------------------------------------------------------------------
    def audit_heads(self, node: str, *, good_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        q = sa.select(audit_heads).where(audit_heads.c.node == node)
        if good_only:
            q = q.where(audit_heads.c.problem.is_(None))
        with self.read() as c:
            return [dict(r) for r in c.execute(q.order_by(audit_heads.c.id.desc()).limit(limit)).mappings()]

    def good_audit_hash(self, node: str, seq: int) -> str | None:
        with self.read() as c:
            return c.execute(sa.select(audit_heads.c.hash).where(audit_heads.c.node == node)
                             .where(audit_heads.c.seq == seq).where(audit_heads.c.problem.is_(None))
                             .limit(1)).scalar()

    def add_audit_head(self, node: str, seq: int, hash_: str, problem: str | None, *, now: datetime) -> None:
        with self.begin() as c:
            c.execute(audit_heads.insert().values(node=node, seq=seq, hash=hash_, problem=problem,
                                                  received_at=now_iso(now)))

    def audit_problems(self) -> dict[str, tuple[int, str]]:
        """node -> (number of flagged heads, the latest problem)."""
        with self.read() as c:
            rows = c.execute(sa.select(audit_heads.c.node, audit_heads.c.problem).where(
                audit_heads.c.problem.is_not(None)).order_by(audit_heads.c.id)).all()
        out: dict[str, tuple[int, str]] = {}
        for node, problem in rows:
            out[node] = (out.get(node, (0, ""))[0] + 1, problem)
        return out

    # ---- reading back ---------------------------------------------------------------------------
    def export(self) -> Iterable[dict[str, Any]]:
        with self.read() as c:
            q = sa.select(records).order_by(records.c.node, records.c.kind, records.c.record_id, records.c.version)
            for r in c.execute(q).mappings():
                yield dict(r)

    def dashboard_rows(self) -> dict[str, Any]:
        with self.read() as c:
            per_day = c.execute(sa.select(batches.c.node, batches.c.day, sa.func.sum(batches.c.records),
                                          sa.func.sum(batches.c.bytes)).group_by(batches.c.node, batches.c.day)
                                .order_by(batches.c.node, batches.c.day.desc())).all()
            totals = c.execute(sa.select(records.c.node, sa.func.count()).group_by(records.c.node)).all()
            high = c.execute(sa.select(batches.c.node, sa.func.max(batches.c.seq_to)).group_by(batches.c.node)).all()
        return {"per_day": per_day, "totals": dict((n, k) for n, k in totals), "high_water": dict(high)}


def ping_when_idle(engine: sa.Engine, idle: float, monotonic: Callable[[], float]) -> None:
    """Ping a pooled connection at checkout only if it sat in the pool `idle` seconds or more.
    SQLAlchemy's pool_pre_ping pings at every checkout: a round trip each time a request reads or
    writes, several per request (docs/hub.md, "Many nodes at once"). A connection that fails its
    ping is replaced (DisconnectionError: the pool connects anew); one that died while in use
    recently fails its statement, and SQLAlchemy then drops every connection the pool held."""
    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:
        record.info["idle_since"] = monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or monotonic() - since < idle:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:
            raise sa.exc.DisconnectionError(f"pooled connection dropped while idle: {e}") from e
        if not alive:
            raise sa.exc.DisconnectionError("pooled connection dropped while idle")


def _sqlite_begin(conn) -> None:
    # IMMEDIATE: a writer never has to upgrade a read lock; schema.py's upgrade asks for EXCLUSIVE
    conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE"))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None          # SQLAlchemy's "begin" event issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


from . import admission_figures, delivery_tables  # noqa: E402,F401 - their tables join `meta` (revisions 0002t, 0002i)
