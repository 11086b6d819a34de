"""`clinic-edge demo`: a complete node on built-in defaults, started as separate processes the
way systemd starts them on the appliance (broker, ingest, web, simulated devices).

This module only spawns `clinic-edge <part>` processes and registers the demo devices through
edge.core, so edge/ still imports nothing from device_drivers or sync.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edge.core import accounts, devices
from edge.core.errors import ValidationError
from edge.core.node import Node

DEMO_DEVICES = (("demo-bp", "bp", "诊室血压计"), ("demo-glucose", "glucose", "血糖仪"),
                ("demo-spo2", "spo2", "指夹血氧仪"), ("demo-scale", "scale", "体重秤"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Part:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    quiet: bool = False   # chatty parts (the broker) write to <data>/logs/<name>.log instead


def register_demo_devices(node: Node) -> Path:
    """Make sure the demo devices exist; return the credentials file the simulator reads."""
    creds_path = node.path("secrets", "demo-devices.json")
    creds = json.loads(creds_path.read_text()) if creds_path.exists() else {}
    for device_id, kind, name in DEMO_DEVICES:
        if device_id in creds and devices.get(node.store, device_id):
            continue
        if devices.get(node.store, device_id):
            devices.remove(node.store, device_id, now=node.clock.now(), actor="demo")
        try:
            password = devices.add(node.store, device_id, kind=kind, name=name, now=node.clock.now(), actor="demo")
        except ValidationError:
            continue
        creds[device_id] = {"password": password, "kind": kind}
    fd = os.open(creds_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f)
    return creds_path


DEMO_DOCTOR = "doctor"


def demo_doctor(node: Node) -> str:
    """The demo doctor's account with a fresh random password (printed at start)."""
    password = accounts.new_password()
    now = node.clock.now()
    if accounts.by_username(node.store, DEMO_DOCTOR) is None:
        accounts.add(node.store, DEMO_DOCTOR, password, role="doctor", display_name="示范医生", now=now, actor="demo")
    else:
        accounts.set_password(node.store, DEMO_DOCTOR, password, now=now, actor="demo")
        accounts.set_disabled(node.store, DEMO_DOCTOR, False, now=now, actor="demo")
    return password


DEMO_HUB_USER = "county"


def demo_hub_user(env: dict[str, str]) -> str:
    """County IT's dashboard account on the demo hub, with a new password (through the hub's CLI)."""
    base = [sys.executable, "-m", "edge", "hub", "user"]
    r = subprocess.run([*base, "add", DEMO_HUB_USER, "--role", "admin", "--generate"], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run([*base, "passwd", DEMO_HUB_USER, "--generate"], env=env, capture_output=True, text=True)
    return r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else "?"


def parts_for(node: Node, *, web_port: int, mqtt_port: int, rate: float, creds: Path,
              hub_port: int = 0, redirect_port: int = 0, mqtts_port: int = 0) -> list[Part]:
    hub_port = hub_port or free_port()
    return [
        # the county hub (database and demo county CA in the data directory) and the node's sync
        # daemon (every 10 s), first: enrolling gives the node the certificate the others serve
        Part("hub", ["hub", "serve", "--listen", f"127.0.0.1:{hub_port}"]),
        Part("sync", ["sync"], env={"CLINIC_EDGE_SYNC_INTERVAL_SECONDS": "10"}),
        Part("broker", ["broker", "run", "--listen", f"127.0.0.1:{mqtt_port}"], quiet=True,
             env={"CLINIC_EDGE_BROKER_TLS_LISTEN": f"127.0.0.1:{mqtts_port or free_port()}"}),
        Part("ingest", ["ingest"]),
        Part("web", ["serve", "--listen", f"127.0.0.1:{web_port}",
                     "--redirect-listen", f"127.0.0.1:{redirect_port or free_port()}"]),
        Part("devices", ["simulate", "--credentials", str(creds), "--rate", str(rate)]),
    ]


def enroll_at_demo_hub(env: dict, hub_url: str, name: str, timeout: float = 60) -> str | None:
    """Enroll the demo node at the demo hub with the two commands county IT and the installer
    type: `hub node add` (on the hub, which keeps its database in this same data directory) and
    `enroll --hub-key` (on the node). Returns what went wrong, or None."""
    import secrets

    for candidate in (name, f"{name}-{secrets.token_hex(2)}"):   # a name left by an earlier demo is taken
        add = _clinic_edge(env, "hub", "node", "add", candidate, "--json")
        if add.returncode == 0:
            break
    else:
        return f"could not register the demo node at the hub: {add.stderr.strip()}"
    doc = json.loads(add.stdout)
    deadline = time.monotonic() + timeout
    while True:   # the hub may still be starting: its answer is refused until it listens
        done = _clinic_edge(env, "enroll", "--hub", hub_url, "--hub-key", doc["hub_key"], "--code", doc["code"])
        if done.returncode == 0:
            print(f"demo: enrolled as {doc['node']} at {hub_url}", file=sys.stderr)
            return None
        if time.monotonic() > deadline:
            return f"could not enroll at the demo hub {hub_url}: {done.stderr.strip()}"
        time.sleep(0.5)


def _clinic_edge(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def _wait_file(path: Path, timeout: float, parts: list[Part]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if any(p.proc is not None and p.proc.poll() is not None for p in parts):
            return False
        time.sleep(0.2)
    return False


def run(node: Node, *, web_port: int = 0, mqtt_port: int = 0, rate: float = 0.1) -> int:
    web_port = web_port or free_port()
    mqtt_port = mqtt_port or free_port()
    node.store  # create and migrate once, before the parts start
    enrolled = node.store.one("SELECT node FROM sync_enrollment WHERE id = 1") is not None
    creds = register_demo_devices(node)
    doctor_password = demo_doctor(node)
    from edge import demo_village  # a small village with a year of history, first start only
    seeded = demo_village.seed(node)
    env = {**os.environ, "CLINIC_EDGE_DATA": str(node.data_dir.resolve()),
           "CLINIC_EDGE_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
           "CLINIC_EDGE_WEB_LISTEN": f"127.0.0.1:{web_port}",
           "CLINIC_EDGE_BROKER_LISTEN": f"127.0.0.1:{mqtt_port}"}
    if node.config.source:
        env["CLINIC_EDGE_CONFIG"] = str(Path(node.config.source).resolve())
    node.close()
    hub_password = demo_hub_user(env)
    hub_port, redirect_port, mqtts_port = free_port(), free_port(), free_port()
    parts = parts_for(node, web_port=web_port, mqtt_port=mqtt_port, rate=rate, creds=creds, hub_port=hub_port,
                      redirect_port=redirect_port, mqtts_port=mqtts_port)
    ca_file, cert_file = node.data_dir / "tls" / "county-ca.pem", node.data_dir / "tls" / "node-cert.pem"
    stopping = False

    def request_stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    url = f"http://127.0.0.1:{web_port}/"
    tls = False
    try:
        for part in parts:
            out = None
            if part.quiet:
                out = open(node.path("logs", f"{part.name}.log"), "ab")
            part.proc = subprocess.Popen([sys.executable, "-m", "edge", *part.args], env={**env, **part.env},
                                         start_new_session=True, stdout=out, stderr=out)
            if out is not None:
                out.close()
            if part.name == "broker":
                _wait_port(mqtt_port, 10)
            if part.name == "hub" and not enrolled:
                message = enroll_at_demo_hub(env, f"https://127.0.0.1:{hub_port}", node.config["node"]["name"])
                if message:
                    print(f"clinic-edge demo: {message}", file=sys.stderr)
                    return 1
            if part.name == "sync":   # enrolled at the demo hub: the node certificate is there
                tls = _wait_file(cert_file, 60, parts)
                url = f"{'https' if tls else 'http'}://127.0.0.1:{web_port}/"
        if not _wait_http(url + "healthz", 20, ca_file if tls else None):
            print("clinic-edge demo: the web UI did not come up; see the messages above", file=sys.stderr)
            return 1
        print(f"\nclinic-edge demo is running.\n  open:   {url}\n"
              f"  log in: user {DEMO_DOCTOR}, password {doctor_password}  (new at every start)\n"
              f"  health: {url}healthz\n"
              f"  county hub dashboard: https://127.0.0.1:{hub_port}/ (records arrive within a minute;\n"
              f"          log in: user {DEMO_HUB_USER}, password {hub_password})\n"
              + _tls_banner(tls, ca_file.resolve(), redirect_port, mqtts_port) +
              f"  MQTT:   mqtt://127.0.0.1:{mqtt_port} (devices/<id>/readings, SenML)\n"
              f"  data:   {node.data_dir.resolve()} (broker log: logs/broker.log)\n"
              + "\n".join(demo_village.banner(seeded)) + "\n"
              f"Press Ctrl-C to stop.\n", flush=True)
        while not stopping:
            for part in parts:
                if part.proc.poll() is not None:
                    print(f"clinic-edge demo: {part.name} stopped (exit {part.proc.returncode}); stopping all",
                          file=sys.stderr)
                    return 1
            time.sleep(0.3)
        return 0
    finally:
        _stop_all(parts)


def _stop_all(parts: list[Part]) -> None:
    for part in reversed(parts):
        if part.proc and part.proc.poll() is None:
            part.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for part in reversed(parts):
        if part.proc is None:
            continue
        try:
            part.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            part.proc.kill()
            part.proc.wait()
    print("clinic-edge demo stopped.", flush=True)


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _tls_banner(tls: bool, ca_file: Path, redirect_port: int, mqtts_port: int) -> str:
    if not tls:
        return ("  TLS:    this data directory was enrolled before the county CA: the web UI is plain HTTP on\n"
                "          loopback (reachable from this machine only); start with a new data directory for TLS\n")
    return (f"  TLS:    a demo county CA made for this data directory signs the hub's and this node's\n"
            f"          certificates. Your browser warns until you trust it: import\n"
            f"          {ca_file}\n"
            f"          as a trusted root certificate authority (README: trusting the county root).\n"
            f"          http://127.0.0.1:{redirect_port}/ only redirects to HTTPS;\n"
            f"          MQTT over TLS on 127.0.0.1:{mqtts_port} (mosquitto_pub --cafile {ca_file.name});\n"
            f"          plain MQTT stays on loopback for the simulated devices\n")


def _wait_http(url: str, timeout: float, cafile: Path | None = None) -> bool:
    import ssl

    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1, context=ctx):
                return True
        except OSError:
            time.sleep(0.2)
    return False
