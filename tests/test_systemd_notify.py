"""sd_notify on a real AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET
(protocol: sd_notify(3)); the real services send READY=1, and WATCHDOG=1 only while healthy."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge.core import sdnotify, watchdog
from edge.core.store import Store

from conftest import Broker, free_port, wait_for


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)
    yield path, s
    s.close()


def received(s: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.extend(s.recv(4096).decode().split("\n"))
        except (socket.timeout, BlockingIOError):
            return out


def _said(status: Path, pid: int, **fields) -> bool:
    """The service's status file is from process `pid` and holds these fields."""
    try:
        said = json.loads(status.read_text())
    except (OSError, ValueError):
        return False
    return said.get("pid") == pid and all(said.get(k) == v for k, v in fields.items())


def test_outside_systemd_every_call_is_a_no_op():
    n = sdnotify.Notifier(env={})
    assert not n.enabled and n.ready() is False and n.watchdog() is False


def test_ready_status_and_watchdog_reach_the_socket(notify_socket):
    path, s = notify_socket
    n = sdnotify.Notifier(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
    assert n.interval == 3.0
    n.ready("serving")
    assert n.watchdog(now=100.0) is True
    assert n.watchdog(now=100.5) is False  # rate-limited to about three per interval
    assert n.watchdog(now=101.1) is True
    assert received(s) == ["READY=1", "STATUS=serving", "WATCHDOG=1", "WATCHDOG=1"]


def test_watchdog_is_for_another_pid_is_ignored():
    n = sdnotify.Notifier(env={"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert n.interval is None


def test_heartbeat_is_silent_while_the_store_is_not_writable(notify_socket, tmp_path):
    path, s = notify_socket
    db = tmp_path / "d.db"
    Store(db).close()
    n = sdnotify.Notifier(env={"NOTIFY_SOCKET": str(path)})
    beat = watchdog.Heartbeat(lambda: watchdog.store_problem(db, timeout=0.1), n, every=0.05)
    assert beat.beat() is True
    holder = Store(db, migrate=False, check=False)
    with holder.atomic():  # another writer holds the lock: a write now would stall
        assert beat.beat() is False
    holder.close()
    assert beat.beat() is True
    msgs = received(s)
    assert msgs[:2] == ["STATUS=healthy", "WATCHDOG=1"]
    assert any(m.startswith("STATUS=the database") and "not writable" in m for m in msgs)
    assert msgs[-1] == "WATCHDOG=1" and msgs.count("WATCHDOG=1") == 2


def test_web_service_says_ready_feeds_the_watchdog_and_stops_on_sigterm(notify_socket, env):
    path, s = notify_socket
    s.settimeout(20)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--listen", f"127.0.0.1:{port}"],
                            env={**env, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "600000"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        msgs: list[str] = []
        wait_for(lambda: msgs.extend(s.recv(4096).decode().split("\n")) or msgs.count("WATCHDOG=1") >= 2,
                 timeout=20, message="READY and two watchdog pings")
        assert "READY=1" in msgs
        proc.terminate()
        assert proc.wait(15) == 0
        s.settimeout(1)
        assert "STOPPING=1" in received(s)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ingest_pings_only_once_connected_to_the_broker(notify_socket, env, node):
    path, s = notify_socket
    node.store  # the broker's password file comes from the store
    broker = Broker(env)  # not started yet: ingest runs but cannot reach it
    env = {**broker.env, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "900000"}
    log = open(Path(env["CLINIC_EDGE_DATA"]) / "ingest.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "ingest"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        s.settimeout(20)
        assert s.recv(4096).decode().startswith("READY=1")
        # ingest writes its status file in the same round in which a ping fell due: once it says
        # "not connected", that round has decided (and must not have pinged)
        status = Path(env["CLINIC_EDGE_DATA"]) / "run" / "ingest.json"
        wait_for(lambda: _said(status, proc.pid, mqtt_connected=False), timeout=20,
                 message="ingest's first round without a broker")
        s.settimeout(0.2)
        assert "WATCHDOG=1" not in received(s), "ingest fed the watchdog without a broker"
        broker.start()
        s.settimeout(20)
        msgs: list[str] = []
        wait_for(lambda: msgs.extend(s.recv(4096).decode().split("\n")) or "WATCHDOG=1" in msgs,
                 timeout=30, message="pings once the broker is there")
        proc.terminate()
        assert proc.wait(20) == 0
        s.settimeout(1)
        assert "STOPPING=1" in received(s)
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()


def test_hub_service_says_ready_and_feeds_the_watchdog(notify_socket, env):
    path, s = notify_socket
    s.settimeout(30)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "hub", "serve", "--listen", f"127.0.0.1:{port}"],
                            env={**env, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "600000"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        msgs: list[str] = []
        wait_for(lambda: msgs.extend(s.recv(4096).decode().split("\n")) or "WATCHDOG=1" in msgs,
                 timeout=30, message="READY and a watchdog ping from the hub")
        assert "READY=1" in msgs
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
