"""Each package owns its tables (issue 16.3): sync's, BLE's and MQTT's migrations live in their
packages and reach core through the `clinic_edge.migrations` entry points, their status through
`clinic_edge.status`. A node database made before the move upgrades with nothing run again; a
part that is not installed is left out; one migration id claimed twice stops the start."""
from __future__ import annotations

import http.server
import sqlite3
import sys
import threading
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import pytest

from edge.core import devices, migrations, status
from edge.core.store import Store
from tests.conftest import clinic_edge

FIXTURE = Path(__file__).parent / "fixtures" / "node_before_16_3.sql"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)

# The migrations of the layout before the move (ids, names), and the module each lives in now.
BEFORE = {
    1: "devices, residents, readings, outbox, audit",
    100: "user accounts and login throttle",
    101: "resident details, search keys and health-record serials",
    102: "measuring sessions, readings inbox and voiding",
    103: "a measuring session belongs to one visit: how it ended, the readings it took",
    110: "session generations and a login throttle per (name, address)",
    200: "sync: enrollment, batches, usage, time anchors, downlink, conflicts",
    300: "ble: device address, download progress per device",
    350: "readings: superseded_by, the device's correction that replaced a reading",
    351: "mqtt: the delivery behind each packet id",
    500: "follow-up records, versions, chronic management, reports",
    501: "covering indexes and per-patient summaries for the worklist and the reports",
    510: "chronic_management is the enrolment record; resident flags derived from it",
    520: "the measuring session a follow-up was filled from and the readings each field used",
    521: "covering indexes of the management and residents the reports and the worklist join",
}
# indexes a later migration dropped or rebuilt (540, 541: fewer pages in every ingest commit)
REPLACED = {"readings_effective", "outbox_batch"}
MOVED = {200: "sync.client.tables", 300: "device_drivers.ble.tables", 351: "device_drivers.mqtt.tables"}


def _old_node(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text(encoding="utf-8"))
    conn.close()


def _schema(conn) -> list[tuple]:
    return [tuple(r) for r in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"
                                           " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")]


def _kept(old: list[tuple], conn) -> list[tuple]:
    """What of the old schema the upgraded database lacks: an index, trigger or view changed or gone,
    or a table that lost a column or changed one's type (a later migration may ADD COLUMN, which
    rewrites the table's CREATE text but keeps everything the old code relies on)."""
    new = set(_schema(conn))
    lost = []
    for entry in old:
        if entry in new:
            continue
        if entry[0] == "table":
            cols = lambda c, t: {(r[1], r[2]) for r in c.execute(f'PRAGMA table_info("{t}")')}
            before = sqlite3.connect(":memory:")
            before.execute(entry[3])
            if cols(before, entry[1]) <= cols(conn, entry[1]):
                continue
        lost.append(entry)
    return lost


def _rows(conn) -> dict[str, list[tuple]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {n: sorted((tuple(r) for r in conn.execute(f'SELECT * FROM "{n}"')), key=repr) for n in names}


def test_a_node_database_made_before_the_move_upgrades_with_nothing_run_again(tmp_path):
    path = tmp_path / "clinic-edge.db"
    _old_node(path)
    raw = sqlite3.connect(path)
    schema, rows = _schema(raw), _rows(raw)
    raw.close()
    assert {r[0]: r[1] for r in rows["_migrations"]} == BEFORE
    store = Store(path)     # applies what is missing, as every service does at start
    assert migrations.apply(store) == []
    added = set(migrations.registered()) - set(BEFORE)   # ids added since the move, if any
    assert {r[0] for r in _rows(store.conn)["_migrations"]} == set(BEFORE) | added
    if not added:
        assert _schema(store.conn) == schema and _rows(store.conn) == rows   # same tables, indexes, data
    else:
        assert [e for e in _kept(schema, store.conn) if e[1] not in REPLACED] == []   # 540/541 replace two indexes
        new_rows = _rows(store.conn)
        assert all([row[:len(r[0])] for row in new_rows[t]] == r if r else not new_rows[t]
                   for t, r in rows.items() if t not in ("_migrations", "sqlite_sequence"))   # added columns come after the old ones
        assert set(rows["sqlite_sequence"]) <= set(new_rows["sqlite_sequence"])   # new tables count from 1
    fresh = Store(tmp_path / "fresh.db")
    assert _schema(fresh.conn) == _schema(store.conn)   # the moved migrations make what the old ones made
    assert store.one("SELECT ble_address FROM devices WHERE id = 'glu-1'") == {"ble_address": "C0:26:DA:01:02:03"}
    assert store.scalar("SELECT last_sequence FROM ble_state WHERE device_id = 'glu-1'") == 17
    store.close()
    fresh.close()


def test_the_registered_migrations_are_those_before_the_move_each_in_its_package():
    found = migrations.registered()
    assert {v: name for v, (name, _) in found.items() if v in BEFORE} == BEFORE
    owners = {v: fn.__module__ for v, (_, fn) in found.items() if v in BEFORE}
    assert {v: m for v, m in owners.items() if v in MOVED} == MOVED
    assert all(m.startswith("edge.core.") for v, m in owners.items() if v not in MOVED)
    blocks = {"sync.client": range(200, 300), "device_drivers": range(300, 400)}
    for v, (_, fn) in found.items():
        for package, ids in blocks.items():
            if fn.__module__.startswith(package + "."):
                assert v in ids, f"migration {v} of {fn.__module__} is outside {package}'s block"


def test_sync_and_ble_contribute_their_status():
    assert [name for name, _ in status.contributions()] == ["ble", "sync"]
    assert status.contribution("sync").__name__ == "sync.client.status"
    assert status.contribution("nothing") is None


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_doctor_prints_the_lines_sync_and_ble_contribute(env, node, hub_url):
    from device_drivers.ble import state as ble_state

    devices.add(node.store, "glu-1", kind="glucose", transport="ble", now=NOW)
    ble_state.set_address(node.store, "glu-1", "C0:26:DA:01:02:03", now=NOW)
    devices.add(node.store, "glu-2", kind="glucose", transport="ble", now=NOW)
    with node.store.atomic() as conn:
        conn.execute("INSERT INTO sync_enrollment VALUES (1, 'clinic-a', ?, 'k', ?)", (hub_url, NOW.isoformat()))
    node.close()
    lines = clinic_edge(env, "doctor", check=False).stdout.splitlines()
    assert f"[ok     ] hub: {hub_url} reachable as node clinic-a; last sync never" in lines
    assert "[ok     ] bluetooth: 1 of 2 Bluetooth devices have an address: glu-1 C0:26:DA:01:02:03" in lines
    at = lines.index("[WARNING] bluetooth glu-2: no Bluetooth address: the driver never connects to it")
    assert lines[at + 1] == ("    fix: clinic-edge device remove glu-2; then clinic-edge device add glu-2 --kind glucose"
                             " --transport ble --address ADDRESS (find it with clinic-edge device scan)")


def test_sync_status_says_the_installed_version(env):
    import json

    report = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    assert report["software"] == f"clinic-edge/{version('clinic-edge')}"


# --- parts that are absent, and parts that collide -------------------------------------------------

def _fake_dist(site: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> Path:
    """A distribution importlib.metadata finds on sys.path: its .dist-info and its modules."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, text in (modules or {}).items():
        (site / f"{module}.py").write_text(text)
    return site


def _with_site(env: dict, site: Path) -> dict:
    return {**env, "PYTHONPATH": str(site)}


def test_a_part_whose_package_is_not_installed_leaves_the_node_starting(env, tmp_path):
    site = _fake_dist(tmp_path / "site", "clinic-edge-extra",
                      "[clinic_edge.migrations]\nlab = clinic_edge_lab.tables\n"
                      "[clinic_edge.status]\nlab = clinic_edge_lab.status\n")
    out = clinic_edge(_with_site(env, site), "init")
    assert "clinic_edge.migrations 'lab' skipped: clinic_edge_lab is not installed on this node" in out.stderr
    assert "store ready" in out.stdout
    db = sqlite3.connect(Path(env["CLINIC_EDGE_DATA"]) / "clinic-edge.db")
    assert {r[0] for r in db.execute("SELECT version FROM _migrations")} == set(migrations.registered())
    db.close()


# A box built without the Bluetooth package: importing device_drivers.ble fails as if it was absent.
WITHOUT_BLE = """
import sys
from importlib.abc import MetaPathFinder

class NoBluetooth(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "device_drivers.ble" or fullname.startswith("device_drivers.ble."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

sys.meta_path.insert(0, NoBluetooth())
from edge.core import migrations, status
from edge.core.store import Store
s = Store(sys.argv[1])
print(sorted(v for (v,) in s.conn.execute("SELECT version FROM _migrations")))
print([name for name, _ in status.contributions()])
"""


def test_a_node_without_bluetooth_starts_without_its_tables(tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, "-c", WITHOUT_BLE, str(tmp_path / "n.db")], capture_output=True,
                         text=True, timeout=60, check=True)
    applied, parts = out.stdout.splitlines()
    assert applied == str(sorted(set(migrations.registered()) - {300}))
    assert parts == "['sync']"
    assert "clinic_edge.migrations 'ble' skipped: device_drivers.ble is not installed on this node" in out.stderr


def test_one_migration_id_claimed_by_two_packages_stops_the_start(env, tmp_path):
    site = _fake_dist(tmp_path / "site", "clinic-edge-twin", "[clinic_edge.migrations]\ntwin = twin_tables\n",
                      {"twin_tables": "from edge.core.migrations import migration\n\n\n"
                                      "@migration(300, 'twin: a table of its own')\n"
                                      "def twin(db):\n    db.execute('CREATE TABLE twin (x)')\n"})
    out = clinic_edge(_with_site(env, site), "init", check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert ("migration 300 is registered twice: device_drivers.ble.tables ('ble: device address, download "
            "progress per device') and twin_tables ('twin: a table of its own'); each package takes its ids "
            "from its own block (docs/architecture.md): give one of them a free id and reinstall") in out.stderr
    db = sqlite3.connect(Path(env["CLINIC_EDGE_DATA"]) / "clinic-edge.db")
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == []   # nothing was applied
    db.close()
