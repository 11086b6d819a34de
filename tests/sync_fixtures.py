"""Real parts for the sync tests: a PostgreSQL server this test session starts itself, the hub
as a `clinic-edge hub serve` process on SQLite or PostgreSQL, and a fault-injecting TCP proxy."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import clinic_edge, free_port, wait_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


# ---- PostgreSQL -------------------------------------------------------------------------------

class Postgres:
    """initdb into a temp dir and run postgres on a loopback port (as the `postgres` user when root)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ce-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> "Postgres":
        if not (PG_BIN / "initdb").exists():
            pytest.fail("PostgreSQL 15 is not installed: run ./run test (it installs the postgresql package)")
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        subprocess.run([*self.as_user, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
        self.log = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen([*self.as_user, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.port),
                                      "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                      "-c", "max_connections=400", "-c", "synchronous_commit=off"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, 30)
        self._wait_ready(30)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def new_database(self) -> str:
        import psycopg

        name = "hub_" + uuid.uuid4().hex[:10]
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:   # signal the postmaster itself: runuser does not pass signals on
                pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGINT)        # fast shutdown
            except (OSError, ValueError, IndexError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the hub ----------------------------------------------------------------------------------

class Hub:
    """`clinic-edge hub serve` over HTTPS with its county CA (tls=False: plain HTTP on loopback)."""

    def __init__(self, base_env: dict[str, str], data: Path, database: str, tls: bool = True, **config: str):
        self.port = free_port()
        self.data = data
        self.env = {**base_env, "CLINIC_EDGE_DATA": str(data), "CLINIC_EDGE_HUB_LISTEN": f"127.0.0.1:{self.port}",
                    "CLINIC_EDGE_HUB_DATABASE": database, "CLINIC_EDGE_HUB_TLS": str(tls).lower()}
        self.env.update({f"CLINIC_EDGE_HUB_{k.upper()}": str(v) for k, v in config.items()})
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.database = database
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "Hub":
        self.log = open(self.data / "hub.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "hub", "serve"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            wait_port(self.port, 20)
        return self

    def stop(self) -> None:
        if getattr(self, "_store", None) is not None:
            self._store.engine.dispose()
            self._store = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    @property
    def ca_file(self) -> Path:
        return self.data / "hub" / "ca" / "county-ca.pem"

    @property
    def fingerprint(self) -> str:
        from sync import signing

        return signing.fingerprint(signing.load_key(self.data / "hub" / "hub.key"))

    def ssl_context(self):
        """What a client that trusts this county's root uses."""
        import ssl

        return ssl.create_default_context(cafile=str(self.ca_file))

    def urlopen(self, target, timeout: float = 10):
        import urllib.request

        url = target if not isinstance(target, str) or target.startswith("http") else self.url + target
        return urllib.request.urlopen(url, timeout=timeout, context=self.ssl_context())

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return clinic_edge(self.env, "hub", *args, check=check)

    def add_node(self, name: str) -> str:
        return self.cli("node", "add", name).stdout.strip().splitlines()[-1]

    def records(self) -> list[dict]:
        return json.loads(self.cli("export", "--json").stdout)

    def store(self):
        from sync.hub.storage import HubStore

        if getattr(self, "_store", None) is None:
            self._store = HubStore(self.database, pool_size=1)
        return self._store

    def add_user(self, name: str = "it", role: str = "admin") -> str:
        """`hub user add NAME --role ROLE --generate`; returns the password (its last line)."""
        return self.cli("user", "add", name, "--role", role, "--generate").stdout.strip().splitlines()[-1]

    def browser(self, name: str = "it", role: str = "admin") -> "HubBrowser":
        """A logged-in session on the hub's pages (a new account NAME with ROLE)."""
        b = HubBrowser(self.url, self.ssl_context())
        status, page = b.login(name, self.add_user(name, role))
        assert status == 200, page
        return b

    def held(self) -> list[tuple[str, str, int]]:
        """(kind, id, version) of every record the hub holds, read from its database."""
        return [(r["kind"], r["record_id"], r["version"]) for r in self.store().export()]


class HubBrowser:
    """urllib with a cookie jar, as a person's browser on the hub's pages (CSRF token included)."""

    def __init__(self, url: str, context=None):
        import http.cookiejar
        import urllib.request

        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                                  urllib.request.HTTPSHandler(context=context))

    def get(self, path: str) -> tuple[int, str]:
        import urllib.error

        try:
            with self.opener.open(self.url + path, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def csrf(self, path: str = "/login") -> str:
        import re

        page = self.get(path)[1]
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def post(self, path: str, form: dict[str, str], *, token: str | None = None) -> tuple[int, str]:
        import urllib.error
        import urllib.parse

        import urllib.request

        data = urllib.parse.urlencode({**form, **({"csrf_token": token} if token else {})}).encode()
        # a browser sends the page's address with a same-origin form (Flask-WTF checks it over HTTPS)
        req = urllib.request.Request(self.url + path, data=data, headers={"Referer": self.url + path})
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def login(self, name: str, password: str) -> tuple[int, str]:
        return self.post("/login", {"username": name, "password": password}, token=self.csrf("/login"))


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def hub(hub_database, tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, hub_database).start()
    yield h
    h.stop()


def sync_env(env: dict[str, str], **sync: object) -> dict[str, str]:
    """Fast retry settings for tests: short timeouts and backoff."""
    base = {"timeout_seconds": 2, "backoff_base_ms": 20, "backoff_cap_ms": 200, "attempts": 4}
    base.update(sync)
    return {**env, **{f"CLINIC_EDGE_SYNC_{k.upper()}": str(v) for k, v in base.items()}}


def enroll(env: dict[str, str], hub: Hub, name: str = "clinic-a", url: str | None = None, *,
           cli: bool = False) -> None:
    """Register and enroll a node: through both real commands (cli=True, as county IT and the
    installer would), or in-process with the same functions, which saves two process starts."""
    if cli:
        code = hub.add_node(name)
        clinic_edge(env, "enroll", "--hub", url or hub.url, "--hub-key", hub.fingerprint, "--code", code)
        return
    from datetime import timedelta

    from edge.core import config as config_mod
    from edge.core.node import Node
    from sync.client.enrollment import enroll_at

    code = f"T{uuid.uuid4().hex[:11].upper()}"
    hub.store().add_node(name, code, now=datetime.now(timezone.utc), ttl=timedelta(hours=1))
    n = Node(config_mod.load(env=env))
    try:
        enroll_at(n, url or hub.url, code, hub.fingerprint, timeout=10)
    finally:
        n.close()


# ---- records of every kind ------------------------------------------------------------------------

KINDS = ("reading", "resident", "follow_up", "report", "referral")


def add_records(node, n: int, *, start: int = 0, rng: random.Random | None = None) -> None:
    """n records: real readings through ingest() and fabricated rows of the other kinds."""
    from edge.core import devices, outbox
    from edge.core.ingest import ingest
    from edge.core.reading import Reading

    rng = rng or random.Random(start)
    store = node.store
    if not devices.get(store, "sync-bp"):
        devices.add(store, "sync-bp", kind="bp", name="bp", now=node.clock.now(), actor="test")
    readings = []
    now = node.clock.now()
    with store.atomic() as conn:
        for i in range(start, start + n):
            kind = KINDS[i % len(KINDS)] if i % 2 else "reading"
            if kind == "reading":
                readings.append(Reading("sync-bp", "8480-6", 100 + i % 60, "mm[Hg]", "mqtt", source_key=f"k{i}"))
                continue
            payload = {"id": f"{kind}-{i}", "n": i, "text": "随访" * rng.randint(1, 20)}
            outbox.add(conn, kind=kind, record_id=f"{kind}-{i}", payload=payload, at=now,
                       priority=outbox.PRIORITY_URGENT if kind == "referral" else outbox.PRIORITY_BULK)
    ingest(store, readings)


def node_records(node) -> set[tuple[str, str, int]]:
    return {(r["kind"], r["record_id"], r["version"]) for r in
            node.store.query("SELECT kind, record_id, version FROM outbox WHERE quarantined_at IS NULL")}


def hub_records(hub: Hub) -> list[tuple[str, str, int]]:
    return hub.held()


# ---- the fault-injecting proxy ---------------------------------------------------------------------

FAULTS = ("pass", "drop_before_request", "drop_during_request", "drop_after_request",
          "drop_during_response", "truncate_response", "stall", "503")
# also: "busy_a_year", a 503 whose Retry-After asks for a year (what a node must not believe)


@dataclass
class FaultProxy:
    """A TCP proxy on loopback that breaks HTTP exchanges on purpose, one fault per connection."""

    upstream: int
    faults: list[str] = field(default_factory=lambda: list(FAULTS))
    seed: int = 1
    stall_seconds: float = 3.0
    port: int = 0
    counts: dict = field(default_factory=dict)
    mode: str | None = None          # force one fault for every connection
    pattern: tuple[str, ...] = ()    # or: the n-th connection gets pattern[n % len(pattern)]
    delay: float = 0.0               # seconds added before each forwarded request (a slow link)
    hub_data: Path | None = None     # a TLS hub's data directory: speak TLS on both sides with its certificates

    def start(self) -> "FaultProxy":
        self.rng = random.Random(self.seed)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if self.hub_data else 'http'}://127.0.0.1:{self.port}"
        self.stopped = False
        if self.hub_data:
            import ssl

            tls = self.hub_data / "hub" / "tls"
            self.server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.server_ctx.load_cert_chain(tls / "hub-cert.pem", tls / "hub-key.pem")
            self.upstream_ctx = ssl.create_default_context(cafile=str(self.hub_data / "hub" / "ca" / "county-ca.pem"))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            seen = sum(self.counts.values())
            fault = self.mode or (self.pattern[seen % len(self.pattern)] if self.pattern
                                  else self.rng.choice(self.faults))
            self.counts[fault] = self.counts.get(fault, 0) + 1
            threading.Thread(target=self._serve, args=(client, fault), daemon=True).start()

    def _upstream(self) -> socket.socket:
        up = socket.create_connection(("127.0.0.1", self.upstream), 10)
        return self.upstream_ctx.wrap_socket(up, server_hostname="127.0.0.1") if self.hub_data else up

    def _serve(self, client: socket.socket, fault: str) -> None:
        try:
            client.settimeout(10)
            if self.hub_data and fault != "drop_before_request":
                client = self.server_ctx.wrap_socket(client, server_side=True)
            with client:
                if fault == "drop_before_request":
                    return
                request = _read_http(client)
                if request is None:
                    return
                if fault == "503":
                    client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n")
                    return
                if fault == "busy_a_year":
                    client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 31536000\r\n"
                                   b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                if fault == "stall":
                    time.sleep(self.stall_seconds)
                    return
                time.sleep(self.delay)
                request = _one_exchange(request)
                with self._upstream() as up:
                    if fault == "drop_during_request":
                        up.sendall(request[:len(request) // 2])   # the hub sees half a request
                        return
                    up.sendall(request)
                    response = _read_all(up)
                if fault == "drop_after_request":
                    return                                    # the hub stored it; the answer is lost
                if fault == "drop_during_response":
                    client.sendall(response[:max(1, len(response) // 3)])
                    return
                if fault == "truncate_response":
                    client.sendall(response[:-max(1, min(20, len(response) // 4))])
                    return
                client.sendall(response)
        except OSError:
            pass


def _read_http(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def _one_exchange(request: bytes) -> bytes:
    """The request with `Connection: close`, so the hub ends the connection after its answer
    (one fault per connection, even though the node keeps connections alive)."""
    head, _, body = request.partition(b"\r\n\r\n")
    lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")]
    return b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + body


def _read_all(sock: socket.socket) -> bytes:
    import ssl

    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ssl.SSLError:          # the hub closed TLS without close_notify: the answer is complete
            return out
        if not chunk:
            return out
        out += chunk


def utc(y, mo, d, h=0, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=timezone.utc)


class CountingProxy:
    """A plain TCP relay on loopback that counts every byte both ways and the HTTP requests that
    cross it (the request lines), keeping connections alive as the node's client does."""

    def __init__(self, upstream: int):
        self.upstream, self.bytes, self.requests = upstream, 0, []
        self.lock = threading.Lock()

    def start(self) -> "CountingProxy":
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.sock.close()

    def reset(self) -> None:
        with self.lock:
            self.bytes, self.requests = 0, []

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream), 10)
            threading.Thread(target=self._pump, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    self.bytes += len(data)
                    if outbound:
                        self.requests += [line.split(b" ")[0].decode() + " " + line.split(b" ")[1].decode()
                                          for line in data.split(b"\r\n") if line.endswith(b" HTTP/1.1")]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
