"""A full data partition is visible and loses no typing. A real small file system (tmpfs, as
root) is the data directory and is filled up: /healthz says so, the web app keeps what was
typed with a message in Chinese, ingest waits (telling systemd why, still feeding the watchdog)
and carries on by itself once there is space again."""
from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import add_device, free_port, stored_readings, wait_for
from followup_support import csrf, form_fields, login, seed

SIZE = "16m"


def _mount_small_disk(where: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a real full file system needs root to mount a small tmpfs (run the tests as root)")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): no full-disk test possible")


class SmallDisk:
    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler.bin"

    def fill(self) -> None:
        """Write until the file system says ENOSPC, in big then small pieces."""
        with open(self.filler, "ab", buffering=0) as f:
            for piece in (1 << 20, 4096, 512):
                try:
                    while True:
                        f.write(b"\0" * piece)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def small_disk(tmp_path):
    where = tmp_path / "small"
    _mount_small_disk(where)
    yield SmallDisk(where)
    subprocess.run(["umount", "-l", str(where)], check=False)


# ---- the web app ------------------------------------------------------------------------------

@pytest.fixture
def data_dir(request, small_disk, tmp_path) -> Path:
    """The whole data directory on the small disk, or (param "store-only") just the database."""
    if getattr(request, "param", "all") == "store-only":
        d = tmp_path / "data"
        d.mkdir()
        return d
    return small_disk.path


@pytest.fixture
def web(env, small_disk):
    from edge.core import config as config_mod
    from edge.core.node import Node
    from edge.web import create_app

    node = Node(config_mod.load(env=env))
    app = create_app(node=node)
    seed(node.store)
    client = app.test_client()
    login(client)
    yield node, client
    node.close()


def test_healthz_resident_and_follow_up_saves_on_a_full_disk(web, small_disk):
    node, client = web
    assert client.get("/healthz").get_json()["disk"] == "ok"
    form_page = client.get("/residents/new").text
    typed = {"name": "王秀英", "sex": "2", "birth_date": "1956-03-02", "phone": "13800000001",
             "address": "东村3组", "csrf_token": csrf(form_page)}
    follow_url = "/followup/R1/hypertension/new"
    follow = form_fields(client.get(follow_url).text)
    follow["sbp"], follow["dbp"] = ["146"], ["91"]                # typed by hand over the device's values
    residents_before = node.store.scalar("SELECT count(*) FROM residents")

    small_disk.fill()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["ok"] is False
    assert health.get_json()["disk"].startswith("full: ") and "free" in health.get_json()["disk"]

    r = client.post("/residents/new", data=typed)
    assert r.status_code == 507
    assert "数据盘已满" in r.text and "仍在表格中" in r.text          # what is wrong, what to do
    assert 'value="王秀英"' in r.text and 'value="13800000001"' in r.text and 'value="东村3组"' in r.text
    assert node.store.scalar("SELECT count(*) FROM residents") == residents_before

    r = client.post(follow_url, data=follow)
    assert r.status_code == 507 and "数据盘已满" in r.text
    assert form_fields(r.text)["sbp"] == ["146"] and form_fields(r.text)["dbp"] == ["91"]
    assert node.store.scalar("SELECT count(*) FROM followups") == 0

    client.get("/lang/en")
    r = client.post("/residents/new", data=typed)
    assert r.status_code == 507 and "the data disk of this box is full" in r.text

    small_disk.free()                                            # county IT made room: save again
    assert client.get("/healthz").status_code == 200
    assert client.post("/residents/new", data=typed).status_code == 303
    assert client.post(follow_url, data=follow).status_code == 302
    assert node.store.scalar("SELECT count(*) FROM residents") == residents_before + 1
    assert node.store.scalar("SELECT count(*) FROM followups") == 1


def test_the_api_says_the_disk_is_full_in_json(web, small_disk):
    node, client = web
    token = csrf(client.get("/").text)
    small_disk.fill()
    r = client.post("/api/v1/residents", json={"name": "李四", "sex": "1", "birth_date": "1960-02-03"},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 507 and r.get_json()["error"] == "disk_full"
    assert "数据盘已满" in r.get_json()["message"]


# ---- ingest -------------------------------------------------------------------------------------

@pytest.fixture
def env(data_dir, small_disk):
    """The database on the small disk; the broker's files stay in the test's data directory."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    e["CLINIC_EDGE_DATA"] = str(data_dir)
    if data_dir != small_disk.path:
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


class Messages:
    def __init__(self, sock):
        self.sock, self.seen = sock, []

    def pump(self) -> list[str]:
        try:
            while True:
                self.seen.extend(self.sock.recv(4096).decode().split("\n"))
        except (socket.timeout, BlockingIOError):
            return self.seen

    def since(self, n: int) -> list[str]:
        return self.pump()[n:]


def publish(broker, device_id, password, value) -> None:
    payload = json.dumps([{"n": "8480-6", "u": "mm[Hg]", "v": value}])
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-u", device_id,
                    "-P", password, "-t", f"devices/{device_id}/readings", "-m", payload],
                   check=True, capture_output=True, timeout=10)


@pytest.mark.parametrize("data_dir", ["store-only"], indirect=True)
def test_ingest_waits_for_space_feeding_the_watchdog_then_carries_on(request, tmp_path, env, node, broker,
                                                                     small_disk, notify_socket):
    path, sock = notify_socket
    password = add_device(env, "bp-1", broker=broker)
    proc_env = {**broker.env, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1500000"}
    log = open(tmp_path / "ingest.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "ingest"], env=proc_env, stdout=log,
                            stderr=subprocess.STDOUT)
    msgs = Messages(sock)
    try:
        wait_for(lambda: "WATCHDOG=1" in msgs.pump(), timeout=30, message="ingest connected and healthy")
        publish(broker, "bp-1", password, 120)
        wait_for(lambda: len(stored_readings(node)) == 1, timeout=30, message="the first reading")

        mark = len(msgs.pump())
        small_disk.fill()
        publish(broker, "bp-1", password, 130)                   # the broker has it; ingest cannot store it
        wait_for(lambda: any(m.startswith("STATUS=waiting for disk space") for m in msgs.since(mark)),
                 timeout=30, message="STATUS= saying ingest waits for disk space")
        waiting_at = len(msgs.pump())
        wait_for(lambda: msgs.since(waiting_at).count("WATCHDOG=1") >= 3, timeout=30,
                 message="the watchdog still fed while waiting")
        assert proc.poll() is None, "ingest died on a full disk"
        assert [r["value"] for r in stored_readings(node)] == [120.0]

        small_disk.free()                                        # space is back: nobody restarts anything
        wait_for(lambda: len(stored_readings(node)) == 2, timeout=60, message="the waiting reading stored")
        assert sorted(r["value"] for r in stored_readings(node)) == [120.0, 130.0]
        wait_for(lambda: "STATUS=healthy" in msgs.since(waiting_at), timeout=30, message="STATUS=healthy again")
        assert proc.poll() is None
    except BaseException:
        print("notify:", msgs.seen[-30:], "\ningest log:\n", (tmp_path / "ingest.log").read_text()[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
