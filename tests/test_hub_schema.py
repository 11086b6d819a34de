"""The hub's schema can change (issue 16 item 4): Alembic revisions on SQLite files and on the
real PostgreSQL server, a database made by the hub before migrations (built from the DDL that hub
ran, tests/data/hub_schema_1cdaed0.*.sql) stamped and served, and hub workers that start
together on one PostgreSQL database migrating it once."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import clinic_edge, free_port, wait_for, wait_port
from sync_fixtures import Hub, add_records, enroll, node_records, sync_env  # noqa: F401

DATA = Path(__file__).parent / "data"
LATER_TABLES = ("hub_audit_heads", "hub_users", "hub_login_failures", "hub_settings")   # added in cb937ee


def engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.NullPool)


def old_hub_database(url: str, *, skip: tuple[str, ...] = ()) -> None:
    """The schema exactly as the hub before migrations made it (its recorded DDL), minus `skip`."""
    eng = engine(url)
    lines = (DATA / f"hub_schema_1cdaed0.{eng.dialect.name}.sql").read_text(encoding="utf-8").splitlines()
    dump = "\n".join(line for line in lines if not line.startswith("--"))
    statements = [s for s in (part.strip() for part in dump.split(";\n")) if s]
    with eng.begin() as c:
        for s in statements:
            if not any(f" {t} " in s or f" {t}(" in s for t in skip):
                c.exec_driver_sql(s)
    eng.dispose()


def _head() -> str:
    from sync.hub import schema

    return schema.scripts().get_current_head()


HEAD = _head()                  # the newest revision this hub ships
# made by revisions after 0001: 0002i forwarding, 0002c the county's places (and an index on hub_records), 0002h
# indexes, 0002s node keys of both crypto suites (and hub_nodes.pubkey widened from 64 to 128), 0002t each
# worker's admission figures
LATER_REVISION_TABLES = ("hub_deliveries", "hub_outbound", "hub_node_places", "hub_node_keys",
                         "hub_signature_refusals", "hub_admission_workers")
LATER_REVISION_INDEXES = {"hub_records_kind", "hub_batches_high", "hub_nonces_seen"}   # 0002c, 0002h


def before_later_revisions(schema: dict) -> dict:
    return {t: (_before_widening(t, {**v, "indexes": [i for i in v["indexes"] if i[0] not in LATER_REVISION_INDEXES]})
                if isinstance(v, dict) else [q for q in v if not q.startswith(LATER_REVISION_TABLES)])
            for t, v in schema.items() if t not in LATER_REVISION_TABLES}


def _before_widening(table: str, v: dict) -> dict:
    if table != "hub_nodes":
        return v
    return {**v, "columns": [(c[0], "VARCHAR(64)", *c[2:]) if c[0] == "pubkey" else c for c in v["columns"]]}


def schema_of(url: str) -> dict:
    """Tables, columns (type, nullability, default), keys, indexes and constraints, as reflected."""
    eng = engine(url)
    insp = sa.inspect(eng)
    out = {}
    for t in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        out[t] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement"))
                        for c in insp.get_columns(t)],
            "pk": insp.get_pk_constraint(t),
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(t)),
            "unique": sorted(str(u) for u in insp.get_unique_constraints(t)),
            "foreign": sorted(str(f) for f in insp.get_foreign_keys(t)),
            "checks": sorted(str(k) for k in insp.get_check_constraints(t)),
        }
    if eng.dialect.name == "postgresql":
        out["(sequences)"] = sorted(insp.get_sequence_names())
    eng.dispose()
    return out


def revision_of(url: str) -> list[str]:
    eng = engine(url)
    with eng.connect() as c:
        rows = [r[0] for r in c.exec_driver_sql("SELECT version_num FROM alembic_version")]
    eng.dispose()
    return rows


def rows_of(url: str) -> dict[str, list]:
    eng = engine(url)
    with eng.connect() as c:
        out = {t: sorted(map(tuple, c.exec_driver_sql(f"SELECT * FROM {t}")))
               for t in sorted(set(sa.inspect(c).get_table_names()) - {"alembic_version"})}
    eng.dispose()
    return out


OLD_ROWS = {   # what a county's hub held before the upgrade (one node, one batch, two records, a downlink)
    "hub_nodes": [{"name": "old-clinic", "pubkey": "A" * 43, "created_at": "2026-11-01T08:00:00.000Z",
                   "enrolled_at": "2026-11-01T09:00:00.000Z", "last_contact": None, "status": "{}"}],
    "hub_batches": [{"node": "old-clinic", "batch_id": "b-old", "seq_from": 1, "seq_to": 2, "records": 2,
                     "bytes": 321, "via": "upload", "day": "2026-11-02", "received_at": "2026-11-02T08:00:00.000Z",
                     "receipt": "{}"}],
    "hub_records": [{"node": "old-clinic", "kind": "reading", "record_id": f"r-old-{i}", "version": 1,
                     "payload": json.dumps({"code": "8480-6", "value": 120 + i}), "digest": "d" * 64,
                     "batch_id": "b-old", "day": "2026-11-02", "received_at": "2026-11-02T08:00:00.000Z"}
                    for i in (1, 2)],
    "hub_downlink": [{"node": "*", "kind": "config", "record_id": "cfg", "version": 1, "payload": "{}",
                      "created_at": "2026-11-03T08:00:00.000Z"}],
}


def put_old_rows(url: str) -> None:
    eng = engine(url)
    meta = sa.MetaData()
    with eng.begin() as c:
        for table, rows in OLD_ROWS.items():
            c.execute(sa.Table(table, meta, autoload_with=c).insert(), rows)
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request, tmp_path):
    """new_database(): an empty database on SQLite (a file) or on the session's PostgreSQL server."""
    if request.param == "sqlite":
        names = iter(range(100))
        return lambda: f"sqlite:///{tmp_path / f'hub{next(names)}.db'}"
    return request.getfixturevalue("postgres").new_database


def test_a_new_database_upgraded_to_head_has_exactly_the_schema_the_hub_made_before_migrations(databases):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sync.hub import schema
    from sync.hub.storage import HubStore, meta

    before, fresh = databases(), databases()
    old_hub_database(before)
    store = HubStore(fresh, pool_size=1)
    assert schema.change_text(*store.migrated) == f"created the hub's tables at revision {HEAD}"
    assert revision_of(fresh) == [HEAD] and schema.state(store.engine).at_head
    assert before_later_revisions(schema_of(fresh)) == schema_of(before)
    assert len(set(schema_of(fresh)) - {"(sequences)"}) == 11 + len(LATER_REVISION_TABLES)
    # and head is what the code reads and writes (storage.py's tables): Alembic finds no difference
    with store.engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c), meta) == []
    store.engine.dispose()


def test_a_database_made_before_migrations_is_stamped_keeps_its_data_and_the_hub_serves_it(databases, env, node,
                                                                                          tmp_path):
    url = databases()
    old_hub_database(url)
    put_old_rows(url)
    held_before = rows_of(url)
    schema_before = schema_of(url)
    (tmp_path / "hubdata").mkdir()
    hub = Hub(env, tmp_path / "hubdata", url).start()
    try:
        log = (hub.data / "hub.log").read_text()
        assert ("hub database: recognised as made by a hub before schema migrations, stamped revision 0001, "
                f"upgraded to {HEAD}") in log
        assert revision_of(url) == [HEAD]
        assert before_later_revisions(schema_of(url)) == schema_before     # nothing re-created or changed
        after = rows_of(url)
        assert {t: after[t] for t in OLD_ROWS} == {t: held_before[t] for t in OLD_ROWS}
        # the hub serves it: a node's upload is stored and acknowledged once, the old records stay
        enroll(env, hub)
        add_records(node, 30)
        assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
        assert node.store.scalar("SELECT count(*) FROM outbox WHERE acked_at IS NULL") == 0
        assert clinic_edge(sync_env(env), "sync", "--once", check=False).returncode == 0
        held = sorted((r["node"], r["kind"], r["id"], r["version"]) for r in hub.records())
        assert held == sorted([("old-clinic", "reading", "r-old-1", 1), ("old-clinic", "reading", "r-old-2", 1)]
                              + [("clinic-a", *k) for k in node_records(node)])
        assert set(held_before["hub_batches"]) < set(rows_of(url)["hub_batches"])
        assert clinic_edge(hub.env, "hub", "db", "current").stdout.endswith(f": revision {HEAD} (head)\n")
    finally:
        hub.stop()


def test_an_older_hub_database_lacking_later_tables_gets_them_then_is_stamped(tmp_path):
    """A hub from before cb937ee had 7 tables; its next start made the rest, so adoption does too."""
    from sync.hub import schema
    from sync.hub.storage import HubStore

    url, fresh = f"sqlite:///{tmp_path / 'older.db'}", f"sqlite:///{tmp_path / 'fresh.db'}"
    old_hub_database(url, skip=LATER_TABLES)
    put_old_rows(url)
    held = rows_of(url)
    assert not set(LATER_TABLES) & set(held)
    store = HubStore(url, pool_size=1)
    assert schema.change_text(*store.migrated) == ("recognised as made by a hub before schema migrations, "
                                                   f"stamped revision 0001, upgraded to {HEAD}")
    HubStore(fresh, pool_size=1)
    assert schema_of(url) == schema_of(fresh) and revision_of(url) == [HEAD]
    assert rows_of(url) == {**held, **{t: [] for t in (*LATER_TABLES, *LATER_REVISION_TABLES)}}


def test_tables_that_are_not_the_hubs_are_refused_and_left_as_they_are(tmp_path):
    from sync.hub import schema
    from sync.hub.storage import HubStore

    url = f"sqlite:///{tmp_path / 'other.db'}"
    eng = engine(url)
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE hub_nodes (name TEXT PRIMARY KEY, colour TEXT)")
        c.exec_driver_sql("INSERT INTO hub_nodes VALUES ('x', 'red')")
    eng.dispose()
    with pytest.raises(schema.SchemaError, match=r"hub_nodes lacks \['created_at', 'enrolled_at', 'last_contact', "
                                                 r"'pubkey', 'status'\] and has \['colour'\]\); nothing was changed"):
        HubStore(url, pool_size=1)
    assert rows_of(url) == {"hub_nodes": [("x", "red")]}


def test_a_new_revision_is_applied_after_the_stamp_and_an_older_hub_refuses_its_database(tmp_path, env):
    """The path a real later revision will take, with a throwaway copy of the revisions (0099: Alembic
    resolves a revision id by prefix, so the throwaway id must not be a prefix of a real one)."""
    from sync.hub import schema
    from sync.hub.storage import HubStore

    location = tmp_path / "migrations"
    shutil.copytree(Path(schema.__file__).parent / "migrations", location,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "0099_test_note.py").write_text(
        'import sqlalchemy as sa\nfrom alembic import op\n\nrevision = "0099"\ndown_revision = "' + HEAD + '"\n\n\n'
        'def upgrade():\n    op.add_column("hub_nodes", sa.Column("note", sa.Text))\n', encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    old_hub_database(url)
    put_old_rows(url)
    store = HubStore(url, pool_size=1, upgrade=False)
    before, after = schema.upgrade(store.engine, location=str(location))
    assert schema.change_text(before, after) == ("recognised as made by a hub before schema migrations, "
                                                 "stamped revision 0001, upgraded to 0099")
    assert revision_of(url) == ["0099"]
    assert rows_of(url)["hub_nodes"] == [(*OLD_ROWS["hub_nodes"][0].values(), None)]
    # this hub's revisions end at HEAD: it says so and changes nothing
    assert schema.state(store.engine).describe() == f"revision 0099, this hub's head is {HEAD}"
    with pytest.raises(schema.SchemaError, match="at schema revision 0099, which this clinic-edge "
                                                 rf"\(newest revision {HEAD}\) does not know"):
        HubStore(url, pool_size=1)
    hub_env = {**env, "CLINIC_EDGE_HUB_DATABASE": url}
    current = clinic_edge(hub_env, "hub", "db", "current", check=False)
    assert current.returncode == 1 and current.stdout.endswith(f": revision 0099, this hub's head is {HEAD}\n")
    refused = clinic_edge(hub_env, "hub", "db", "upgrade", check=False)
    assert refused.returncode == 2 and refused.stderr.startswith(
        f"clinic-edge hub: cannot open the hub database {url}: SchemaError: the hub database is at schema "
        f"revision 0099, which this clinic-edge (newest revision {HEAD}) does not know: a newer hub has migrated it.")
    assert revision_of(url) == ["0099"]
    store.engine.dispose()


def test_two_hubs_starting_at_once_on_one_postgresql_database_migrate_it_once(postgres, env, tmp_path):  # noqa: F811
    import psycopg

    from sync.hub import schema

    url = postgres.new_database()
    name = url.rsplit("/", 1)[1]
    hubs = []
    for i in (1, 2):
        (tmp_path / f"worker{i}").mkdir()
        hubs.append(Hub(env, tmp_path / f"worker{i}", url))
    waiting = ("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
               "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s")
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (schema.LOCK_KEY,))   # both must meet at the lock
        try:
            for h in hubs:
                h.start(wait=False)
            wait_for(lambda: holder.execute(waiting, (name,)).fetchone()[0] == 2, 30,
                     message="both hub workers waiting at the schema lock")
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (schema.LOCK_KEY,))
    try:
        for h in hubs:
            wait_port(h.port, 30)
            with h.urlopen("/healthz") as r:
                assert r.status == 200
        logs = sorted(next(line for line in (h.data / "hub.log").read_text().splitlines()
                           if line.startswith("hub database:")) for h in hubs)
        assert logs == [f"hub database: at revision {HEAD} (head), nothing to change",
                        f"hub database: created the hub's tables at revision {HEAD}"]
        assert revision_of(url) == [HEAD]
    finally:
        for h in hubs:
            h.stop()


def test_the_built_wheel_carries_the_revisions_and_migrates_from_outside_the_checkout(tmp_path):
    """Package data, not a path into the checkout: the wheel's own copy upgrades a database, run
    from a directory with no alembic.ini."""
    import subprocess
    import sys
    import zipfile

    from appliance_release import base_wheel

    wheel = base_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {"sync/hub/migrations/env.py",
            "sync/hub/migrations/versions/0001_hub_schema_before_migrations.py"} <= set(names)
    unpacked = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(unpacked)
    (tmp_path / "elsewhere").mkdir()
    probe = ("from sync.hub import schema; from sync.hub.storage import HubStore; "
             f"s = HubStore('sqlite:///{tmp_path / 'hub.db'}', pool_size=1); "
             "print(schema.scripts().dir); print(schema.change_text(*s.migrated))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path / "elsewhere", capture_output=True, text=True,
                         env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"}, check=True).stdout
    assert out == f"{unpacked / 'sync' / 'hub' / 'migrations'}\ncreated the hub's tables at revision {HEAD}\n"


def test_two_workers_opening_one_new_sqlite_file_at_once_migrate_it_once(tmp_path):
    """Both workers are held at BEGIN EXCLUSIVE behind a transaction of the test's own; released,
    one creates the tables and the other, after waiting for its lock, finds them."""
    import sqlite3
    import threading

    from sync.hub import schema
    from sync.hub.storage import HubStore

    path = tmp_path / "hub.db"
    url = f"sqlite:///{path}"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")          # as the hub's connections set it
    holder.execute("BEGIN EXCLUSIVE")
    at_lock, results = [], []

    def begins(conn, cursor, statement, *_):
        if statement == "BEGIN EXCLUSIVE":
            at_lock.append(threading.get_ident())

    sa.event.listen(sa.Engine, "before_cursor_execute", begins)
    try:
        workers = [threading.Thread(target=lambda: results.append(schema.change_text(*HubStore(url).migrated)))
                   for _ in range(2)]
        for w in workers:
            w.start()
        wait_for(lambda: len(at_lock) == 2, 10, message="both workers at BEGIN EXCLUSIVE")
        holder.execute("COMMIT")
        for w in workers:
            w.join(20)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", begins)
        holder.close()
    assert sorted(results) == [f"at revision {HEAD} (head), nothing to change",
                               f"created the hub's tables at revision {HEAD}"]
    assert revision_of(url) == [HEAD]


def test_a_hub_that_cannot_reach_its_database_names_it_without_the_password(env):
    """The error goes to a terminal, a log and maybe a ticket: the database password must not."""
    url = f"postgresql+psycopg://county:s3cr3t-pw@127.0.0.1:{free_port()}/hub"
    refused = clinic_edge({**env, "CLINIC_EDGE_HUB_DATABASE": url}, "hub", "node", "list", check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        f"clinic-edge hub: cannot open the hub database postgresql+psycopg://county:***@127.0.0.1:"), refused.stderr
    assert "s3cr3t-pw" not in refused.stderr + refused.stdout
