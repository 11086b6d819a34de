"""The sync daemon on a full data partition (issue 12): a real small tmpfs (as root) holds the
database and is filled up while `clinic-edge sync` runs against a real hub. The daemon does not
crash into a systemd restart loop: it says why in STATUS= and its status file, keeps feeding the
watchdog, and carries on by itself once there is space again."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_for
from sync_fixtures import add_records, enroll, hub, sync_env  # noqa: F401
from test_disk_full import Messages, SmallDisk, _mount_small_disk


@pytest.fixture
def hub_database(tmp_path) -> str:   # SQLite only: the hub's storage is not what is tested here
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def small_disk(tmp_path):
    where = tmp_path / "small"
    _mount_small_disk(where)
    yield SmallDisk(where)
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def env(data_dir, small_disk):
    """The database on the small disk; status files and the key stay in the data directory."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    e["CLINIC_EDGE_DATA"] = str(data_dir)
    e["CLINIC_EDGE_STORE_PATH"] = str(small_disk.path / "clinic-edge.db")
    return e


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.5)
    yield path, s
    s.close()


def _status(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "run" / "sync.json").read_text())
    except (OSError, ValueError):
        return {}


def test_the_sync_daemon_waits_out_a_full_disk_feeding_the_watchdog_then_carries_on(
        tmp_path, env, node, hub, small_disk, notify_socket, data_dir):
    path, sock = notify_socket
    enroll(env, hub)
    proc_env = {**sync_env(env, interval_seconds=2), "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1500000"}
    log = open(tmp_path / "sync.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "sync"], env=proc_env, stdout=log,
                            stderr=subprocess.STDOUT)
    msgs = Messages(sock)
    try:
        wait_for(lambda: "WATCHDOG=1" in msgs.pump(), timeout=30, message="the daemon ready and healthy")
        wait_for(lambda: "last_cycle" in _status(data_dir), timeout=30, message="the first cycle")

        mark = len(msgs.pump())
        small_disk.fill()
        (data_dir / "run" / "sync-now").touch()          # "sync now" from the web UI, on a full disk
        wait_for(lambda: "waiting for disk space" in _status(data_dir).get("waiting", ""), timeout=30,
                 message="the status file saying sync waits for disk space")
        wait_for(lambda: any(m.startswith("STATUS=waiting for disk space") for m in msgs.since(mark)),
                 timeout=30, message="STATUS= saying it waits for disk space")
        waiting_at = len(msgs.pump())
        wait_for(lambda: msgs.since(waiting_at).count("WATCHDOG=1") >= 3, timeout=30,
                 message="the watchdog still fed while waiting")
        assert proc.poll() is None, "the sync daemon died on a full disk (systemd would restart it in a loop)"

        small_disk.free()                                  # space is back: nobody restarts anything
        add_records(node, 3)
        wait_for(lambda: len(hub.held()) == 3, timeout=60, message="the records reached the hub")
        wait_for(lambda: "last_cycle" in _status(data_dir), timeout=30, message="a normal cycle status again")
        assert proc.poll() is None
    except BaseException:
        print("notify:", msgs.seen[-30:], "\nsync log:\n", (tmp_path / "sync.log").read_text()[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
