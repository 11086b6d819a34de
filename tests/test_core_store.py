"""The store: pragmas, migrations, damage detection, backup while writing, audit chain, config."""
from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import datetime, timezone

import pytest

from edge.core import audit, config as config_mod, devices, migrations
from edge.core.errors import StoreDamaged
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.core.store import Store
from tests.conftest import clinic_edge

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def test_store_runs_wal_full_sync_foreign_keys(tmp_path):
    s = Store(tmp_path / "n.db")
    assert s.scalar("PRAGMA journal_mode") == "wal"
    assert s.scalar("PRAGMA synchronous") == 2  # FULL
    assert s.scalar("PRAGMA foreign_keys") == 1
    every = sorted(migrations.registered())
    assert [r[0] for r in s.conn.execute("SELECT version FROM _migrations ORDER BY version")] == every
    s.close()
    again = Store(tmp_path / "n.db")  # migrations are applied once
    assert again.scalar("SELECT count(*) FROM _migrations") == len(every)
    again.close()


def test_a_damaged_database_is_refused_with_how_to_restore(tmp_path, env):
    path = tmp_path / "data" / "clinic-edge.db"
    Store(path).close()
    raw = bytearray(path.read_bytes())
    raw[100:4096 * 2] = b"\x00garbage" * ((4096 * 2 - 100) // 8)
    path.write_bytes(bytes(raw[: len(raw)]))
    with pytest.raises(StoreDamaged, match="clinic-edge restore"):
        Store(path)
    out = clinic_edge(env, "readings", check=False)
    assert out.returncode == 2 and "damaged" in out.stderr and "Traceback" not in out.stderr


def test_clinical_rows_cannot_be_deleted_and_audit_is_append_only(tmp_path):
    s = Store(tmp_path / "n.db")
    devices.add(s, "bp-1", kind="bp", now=NOW)
    ingest(s, [Reading("bp-1", "8480-6", 120, "mm[Hg]", "manual", device_time=NOW)])
    for sql in ("DELETE FROM readings", "DELETE FROM audit", "UPDATE audit SET actor = 'x'"):
        with pytest.raises(sqlite3.IntegrityError):
            with s.atomic() as conn:
                conn.execute(sql)
    assert s.scalar("SELECT count(*) FROM readings") == 1


def test_one_ingest_writes_row_outbox_and_audit_together(tmp_path):
    s = Store(tmp_path / "n.db")
    devices.add(s, "bp-1", kind="bp", now=NOW)
    r = Reading("bp-1", "8480-6", 120, "mm[Hg]", "manual", device_time=NOW)
    first = ingest(s, [r])
    again = ingest(s, [Reading("bp-1", "8480-6", 120, "mm[Hg]", "manual", device_time=NOW)])
    assert not first[0].duplicate and again[0].duplicate
    assert s.scalar("SELECT count(*) FROM readings") == 1
    assert s.scalar("SELECT count(*) FROM outbox WHERE kind = 'reading'") == 1
    assert s.scalar("SELECT count(*) FROM audit WHERE entity = 'reading'") == 1
    refused = ingest(s, [Reading("ghost", "8480-6", 120, "mm[Hg]", "manual")])
    assert refused[0].status == "refused" and "not registered" in refused[0].reason


def test_audit_chain_names_the_first_edited_or_deleted_entry(tmp_path, env):
    path = tmp_path / "data" / "clinic-edge.db"
    s = Store(path)
    for i in range(5):
        devices.add(s, f"dev-{i}", kind="bp", now=NOW)
    assert audit.verify(s.conn).ok
    s.close()
    assert "intact" in clinic_edge(env, "audit", "verify").stdout
    raw = sqlite3.connect(path)  # someone edits the file behind the application's back
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    raw.commit()
    out = clinic_edge(env, "audit", "verify", check=False)
    assert out.returncode == 1 and "entry 3" in out.stderr
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute("DELETE FROM audit WHERE seq = 2")
    raw.commit()
    raw.close()
    assert "entry 2 is missing" in clinic_edge(env, "audit", "verify", check=False).stderr


def test_backup_while_ingest_writes_is_complete_and_consistent(tmp_path):
    s = Store(tmp_path / "n.db")
    devices.add(s, "bp-1", kind="bp", now=NOW)
    stop = threading.Event()

    def writer():
        w = Store(tmp_path / "n.db", migrate=False)
        n = 0
        while not stop.is_set():
            ingest(w, [Reading("bp-1", "8480-6", 100 + n % 50, "mm[Hg]", "manual", source_key=str(n))])
            n += 1
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        backups = [s.backup(tmp_path / f"b{i}.db") for i in range(3)]
    finally:
        stop.set()
        t.join()
    for b in backups:
        copy = Store(b, migrate=False)
        assert copy.integrity_check() == ["ok"]
        # each backup is a transaction-consistent snapshot: every reading has its outbox and audit rows
        n = copy.scalar("SELECT count(*) FROM readings")
        assert copy.scalar("SELECT count(*) FROM outbox WHERE kind='reading'") == n
        copy.close()


def test_backup_and_restore_through_the_command_line(env, data_dir, tmp_path):
    clinic_edge(env, "device", "add", "bp-1", "--kind", "bp")
    out = clinic_edge(env, "backup", str(tmp_path / "usb")).stdout
    [backup] = list((tmp_path / "usb").glob("clinic-edge-*.db"))
    assert str(backup) in out
    clinic_edge(env, "device", "add", "bp-2", "--kind", "bp")
    clinic_edge(env, "restore", "--yes", str(backup))
    assert "bp-2" not in clinic_edge(env, "device", "list").stdout


def test_restore_refuses_while_a_service_has_the_database_open(env, data_dir, tmp_path):
    clinic_edge(env, "device", "add", "bp-1", "--kind", "bp")
    clinic_edge(env, "backup", str(tmp_path / "usb"))
    [backup] = list((tmp_path / "usb").glob("clinic-edge-*.db"))
    clinic_edge(env, "device", "add", "bp-2", "--kind", "bp")
    db = data_dir / "clinic-edge.db"
    service = subprocess.Popen([sys.executable, "-c", "import sys, time; from edge.core.store import Store; "
                                "s = Store(sys.argv[1]); print('open', flush=True); time.sleep(60)", str(db)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout.readline().strip() == "open"
        out = clinic_edge(env, "restore", "--yes", str(backup), check=False)
        assert out.returncode != 0
        assert f"in use by process {service.pid}" in out.stderr and "stop the services" in out.stderr
    finally:
        service.kill()
        service.wait()
    assert "bp-2" in clinic_edge(env, "device", "list").stdout      # nothing was changed


def test_restore_swaps_the_database_in_one_rename_keeping_its_mode(env, data_dir, tmp_path):
    """A power cut during a restore leaves the old database or the whole backup: the backup is
    copied beside the database, fsynced and renamed over it (a new file), never written into it."""
    clinic_edge(env, "device", "add", "bp-1", "--kind", "bp")
    clinic_edge(env, "backup", str(tmp_path / "usb"))
    [backup] = list((tmp_path / "usb").glob("clinic-edge-*.db"))
    db = data_dir / "clinic-edge.db"
    os.chmod(db, 0o600)
    inode = db.stat().st_ino
    clinic_edge(env, "restore", "--yes", str(backup))
    assert db.stat().st_ino != inode
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert not list(data_dir.glob(".clinic-edge.db.*.tmp"))
    assert "bp-1" in clinic_edge(env, "device", "list").stdout


@pytest.mark.parametrize("toml,env_over,message", [
    ('[mqtt]\nurl = "http://x"', {}, "mqtt.url = 'http://x' is not allowed; expected mqtt://HOST:PORT"),
    ('[web]\nlisten = "nohost"', {}, "web.listen = 'nohost'"),
    ('[mqtt]\nmax_payload = "big"', {}, "mqtt.max_payload = 'big'"),
    ('[mqtt]\nfoo = 1', {}, "unknown key mqtt.foo"),
    ('[nope]\nx = 1', {}, "unknown section [nope]"),
    ("[mqtt\n", {}, "not valid TOML"),
    ("", {"CLINIC_EDGE_NODE_DIVISION_CODE": "1101"}, "node.division_code = '1101'"),
    ("", {"CLINIC_EDGE_MQTT_MAX_PAYLOAD": "ten"}, "mqtt.max_payload = 'ten'"),
])
def test_invalid_config_stops_with_one_line_naming_key_value_and_allowed(tmp_path, env, toml, env_over, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.load(cfg, env={**env, **env_over})
    assert message in str(e.value) and "\n" not in str(e.value)
    out = clinic_edge({**env, **env_over, "CLINIC_EDGE_CONFIG": str(cfg)}, "readings", check=False)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_environment_overrides_every_key(tmp_path, env):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n[drivers.astm]\nurl = "/dev/ttyUSB0"\n')
    c = config_mod.load(cfg, env={**env, "CLINIC_EDGE_MQTT_URL": "mqtt://10.0.0.2:1884",
                                  "CLINIC_EDGE_WEB_IDLE_MINUTES": "15",
                                  "CLINIC_EDGE_DRIVERS_ASTM_URL": "loop://"})
    assert c["mqtt"]["url"] == "mqtt://10.0.0.2:1884"
    assert c["web"]["idle_minutes"] == 15
    assert c.driver("astm")["url"] == "loop://"
    assert c.data_dir == tmp_path / "data"
