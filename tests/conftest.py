"""Shared fixtures: a node on a temporary data directory, a real mosquitto broker, the real
`clinic-edge` processes. Nothing here is a mock."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge.core import config as config_mod
from edge.core.node import Node

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {message}")


@contextmanager
def healthz_server(status: int, body: dict, then: list[tuple[int, dict]] | None = None):
    """A real HTTP server on loopback answering every GET with `status` and `body` as JSON, like a
    release's /healthz; with `then`, the first GET gets (status, body) and each later one the next
    answer of `then` (its last one repeated). Yields its /healthz URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = [(status, json.dumps(body).encode())] + [(s, json.dumps(b).encode()) for s, b in then or ()]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                code, raw = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz"
    finally:
        server.shutdown()
        server.server_close()


def pytest_collection_modifyitems(items):
    """The image and VM tests first: they are the longest file by far (an image build and three VM
    boots), so on `./run test`'s two workers the other worker runs everything else beside them."""
    items.sort(key=lambda item: item.path.name != "test_image_build.py")


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the whole run (tests/sync_fixtures.Postgres). Defined here, not in
    sync_fixtures: a fixture imported into each test module is a fixture of each module, and the run
    had started one server per module and kept them all alive until the end."""
    from sync_fixtures import Postgres

    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def env(data_dir) -> dict[str, str]:
    """Environment for `clinic-edge` subprocesses and for config.load in this process."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
    e["CLINIC_EDGE_DATA"] = str(data_dir)
    return e


@pytest.fixture
def node(env) -> Node:
    n = Node(config_mod.load(env=env))
    yield n
    n.close()


class Broker:
    """A real mosquitto on a free loopback port, configured by `clinic-edge broker run`."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.env = {**env, "CLINIC_EDGE_MQTT_URL": f"mqtt://127.0.0.1:{self.port}",
                    "CLINIC_EDGE_BROKER_LISTEN": f"127.0.0.1:{self.port}"}
        self.proc: subprocess.Popen | None = None
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Broker":
        log = open(Path(self.env["CLINIC_EDGE_DATA"]) / "broker.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "broker", "run"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port)
        return self

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def wait_login(self, username: str, password: str, timeout: float = 10.0) -> None:
        """Until this account can log in (mosquitto re-reads its files shortly after a reload)."""
        wait_for(lambda: self.accepts(username, password), timeout, interval=0.1,
                 message=f"the broker to accept {username}")

    def accepts(self, username: str, password: str) -> bool:
        import paho.mqtt.client as mqtt

        answers: list = []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{username}"[:23])
        client.username_pw_set(username, password)
        client.on_connect = lambda c, u, flags, reason, props: answers.append(reason)
        try:
            client.connect("127.0.0.1", self.port, keepalive=5)
            deadline = time.monotonic() + 2
            while not answers and time.monotonic() < deadline:
                client.loop(timeout=0.1)
            client.disconnect()
        except OSError:
            return False
        return bool(answers) and not answers[0].is_failure


@pytest.fixture
def broker(env, node) -> Broker:
    if not shutil.which("mosquitto"):
        pytest.fail("mosquitto is not installed: run the README's test command (./run test), which installs it")
    node.store  # the broker's password file is generated from the store
    b = Broker(env).start()
    yield b
    b.stop()


def clinic_edge(env: dict[str, str], *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "edge", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"clinic-edge {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


class Ingest:
    """`clinic-edge ingest` as a separate process (so it can be SIGKILLed like on a real box)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Ingest":
        self.log = open(Path(self.env["CLINIC_EDGE_DATA"]) / "ingest.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "ingest"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_connected(self, timeout: float = 15) -> "Ingest":
        """Until ingest has subscribed (its status file says so), as on a box that runs all day."""
        import json

        status = Path(self.env["CLINIC_EDGE_DATA"]) / "run" / "ingest.json"

        def connected():
            try:
                s = json.loads(status.read_text())
            except (OSError, ValueError):
                return False
            return s.get("mqtt_connected") and s.get("pid") == self.proc.pid

        wait_for(connected, timeout, message="ingest to connect")
        return self

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.log.close()
        return self.proc.returncode

    def output(self) -> str:
        return (Path(self.env["CLINIC_EDGE_DATA"]) / "ingest.log").read_text(errors="replace")


@pytest.fixture
def ingest_proc(broker):
    procs = []

    def start(wait: bool = True) -> Ingest:
        i = Ingest(broker.env).start()
        if wait:
            i.wait_connected()
        procs.append(i)
        return i

    yield start
    for p in procs:
        if p.proc.poll() is None:
            p.stop(signal.SIGKILL)


class SetClock:
    """A box clock the test sets (the node's clock interface, edge/core/clock.py): wall time, boot
    id and monotonic seconds, standing still until advance()."""

    def __init__(self, wall, boot: str = "boot", mono: float = 1.0):
        self.wall, self.boot, self.mono = wall, boot, mono

    def now(self):
        return self.wall

    def monotonic(self):
        return self.mono

    def boot_id(self):
        return self.boot

    def anchor(self):
        from edge.core.clock import Anchor

        return Anchor(self.wall, self.boot, self.mono)

    def advance(self, seconds: float):
        from datetime import timedelta

        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def clinic_yesterday():
    """Yesterday in a Beijing-time clinic by the box's clock (edge.core.clock.SystemClock). Ingest
    believes a device's time only when it is not ahead of that clock (docs/time.md): results dated
    then are believed whatever day the suite runs, where a fixed date holds only once it is past."""
    from datetime import timedelta, timezone

    from edge.core.clock import SystemClock

    return SystemClock().now().astimezone(timezone(timedelta(hours=8))).date() - timedelta(days=1)


def stored_readings(node) -> list[dict]:
    """Every row of the readings table, read through a connection of its own (as another process would)."""
    import sqlite3

    conn = sqlite3.connect(node.config.store_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM readings ORDER BY code")]
    finally:
        conn.close()


def add_device(env: dict[str, str], device_id: str, kind: str = "bp", broker: Broker | None = None) -> str:
    """Register a device through the CLI (which reloads a running broker); returns its MQTT password
    once the broker accepts the new account."""
    import json

    out = clinic_edge(env, "device", "add", device_id, "--kind", kind, "--json")
    password = json.loads(out.stdout)["password"]
    if broker is not None:
        broker.wait_login(device_id, password)
    return password
