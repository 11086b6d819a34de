"""Care of a running box: nightly backups (rotated, copied to the USB drive) taken while ingest
writes, `clinic-edge restore` of one, and `clinic-edge doctor` naming problems with their fixes."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from conftest import add_device, clinic_edge, wait_for
from edge.appliance.backup import nightly
from edge.core import config as config_mod, sealed
from edge.core.node import Node
from test_mqtt_durability import Publisher, stored_seconds


def _ids(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM readings ORDER BY id")]
    finally:
        conn.close()


def test_backup_while_ingest_writes_then_restore_round_trip(env, data_dir, node, broker, ingest_proc, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    keys = tmp_path / "county-it"      # the county backup key pair: backups are sealed to backup.pub
    clinic_edge(broker.env, "backup-key", str(keys))
    env = {**broker.env, "CLINIC_EDGE_APPLIANCE_USB_BACKUP_DIR": str(usb), "CLINIC_EDGE_APPLIANCE_KEEP_BACKUPS": "2",
           "CLINIC_EDGE_APPLIANCE_BACKUP_KEY": str(keys / "backup.pub")}
    password = add_device(env, "bp-1", broker=broker)
    ingest = ingest_proc()
    pub = Publisher(broker, "bp-1", password)
    stop = threading.Event()

    def publish():
        n = 0
        while not stop.is_set():
            pub.send(n)
            n += 1
            time.sleep(0.003)

    writer = threading.Thread(target=publish)
    writer.start()
    try:
        wait_for(lambda: len(stored_seconds(data_dir)) > 100, timeout=20, message="ingest writing")
        # three nights (the backups are named by their time); only the newest two are kept, here
        # and on the USB drive
        box = Node(config_mod.load(env=env))
        try:
            backups = [nightly(box, now=datetime(2026, 5, day, 2, 0, tzinfo=timezone.utc), require_mount=False)[0]
                       for day in (1, 2, 3)]
        finally:
            box.close()
    finally:
        stop.set()
        writer.join()
    wait_for(lambda: len(stored_seconds(data_dir)) >= len(pub.acked), timeout=20, message="ingest caught up")
    ingest.stop()
    pub.close()
    local = sorted((data_dir / "backups").glob("clinic-edge-*.sealed"))
    assert [p.name for p in local] == [p.name for p in backups[1:]]
    assert sorted(p.name for p in usb.glob("*.sealed")) == [p.name for p in backups[1:]]
    live = _ids(data_dir / "clinic-edge.db")
    opened = tmp_path / "opened.db"
    with open(backups[-1], "rb") as src, open(opened, "wb") as dst:
        sealed.unseal_stream(sealed.load_private(keys / "backup.key"), src, dst, "backup")
    taken = _ids(opened)
    assert 100 < len(taken) < len(live), "the backup was taken mid-stream"
    assert set(taken) <= set(live)
    # restore the last backup with every process stopped (like the services; this test's own
    # connection too): the node is back to that moment, consistent and working
    node.close()
    clinic_edge(env, "restore", str(usb / backups[-1].name), "--yes", "--key", str(keys / "backup.key"))
    assert _ids(data_dir / "clinic-edge.db") == taken
    assert "intact" in clinic_edge(env, "audit", "verify").stdout
    ingest = ingest_proc()
    pub2 = Publisher(broker, "bp-1", password)
    try:
        pub2.send(100000)
        wait_for(lambda: 100000 in stored_seconds(data_dir), timeout=20, message="a reading after the restore")
    finally:
        pub2.close()


def test_doctor_names_each_problem_with_its_fix(env, data_dir):
    clinic_edge(env, "init")
    out = clinic_edge(env, "doctor", "--json", check=False)
    assert out.returncode == 1  # no broker, no backup yet
    findings = {f["check"]: f for f in json.loads(out.stdout)}
    assert findings["database"]["level"] == "ok"
    assert findings["broker"]["level"] == "problem" and "clinic-edge-broker" in findings["broker"]["fix"]
    assert findings["backup"]["level"] == "problem" and findings["backup"]["fix"]
    assert findings["hub"]["level"] == "warning" and "enroll" in findings["hub"]["fix"]
    for name in ("disk", "sd card", "clock", "backlog", "versions"):
        assert name in findings, name
    clinic_edge(env, "backup-nightly")
    again = {f["check"]: f for f in json.loads(clinic_edge(env, "doctor", "--json", check=False).stdout)}
    assert again["backup"]["level"] == "warning" and "USB" in again["backup"]["fix"]
    text = clinic_edge(env, "doctor", check=False).stdout
    assert "[PROBLEM] broker" in text and "    fix: systemctl restart clinic-edge-broker" in text
