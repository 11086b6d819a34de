"""First boot against a temporary directory standing in for the boot (FAT) partition and a real
local hub (`clinic-edge hub serve`, issue 4): keys with the right permissions, enrolled (after
retrying while the hub was not up yet), secrets removed, the admin's one-time setup code on the
console, in the log and on the boot partition (never on /setup, issue 13), and a wrong code
reported on /setup and in the log."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import clinic_edge, free_port, wait_for, wait_port
from edge.appliance import firstboot
from edge.appliance.errors import ProvisioningError
from edge.core import accounts, config as config_mod
from edge.core.clock import SystemClock
from edge.core.node import Node

BOOT_FILE = """\
[clinic]
name = "石桥村卫生室"
division_code = "110105001002"
[hub]
url = "{url}"
code = "{code}"
hub_key = "{hub_key}"
[wifi]
ssid = "clinic-wifi"
psk = "wifi-secret-123"
"""


class Hub:
    def __init__(self, base: Path, names: str = ""):
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.fingerprint = ""
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
        self.env["CLINIC_EDGE_DATA"] = str(base / "hub-data")
        self.env["CLINIC_EDGE_HUB_LISTEN"] = f"127.0.0.1:{self.port}"
        self.env["CLINIC_EDGE_HUB_NAMES"] = names     # extra names in the hub's TLS certificate
        self.proc = None

    def new_code(self, name: str) -> str:
        lines = clinic_edge(self.env, "hub", "node", "add", name).stdout.strip().splitlines()
        self.fingerprint = next(x.split()[-1] for x in lines if x.startswith("hub key fingerprint:"))
        return lines[-1]

    def boot_file(self, name: str, *, code: str | None = None, hub_key: str | None = None) -> str:
        code = code or self.new_code(name)
        return BOOT_FILE.format(url=self.url, code=code, hub_key=hub_key or self.fingerprint)

    @property
    def ca_file(self) -> Path:
        return Path(self.env["CLINIC_EDGE_DATA"]) / "hub" / "ca" / "county-ca.pem"

    def start(self) -> "Hub":
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "hub", "serve"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 20)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def hub(tmp_path):
    h = Hub(tmp_path)
    yield h
    h.stop()


@pytest.fixture
def box(tmp_path, env):
    """The node's environment: its config file on the data partition, a boot partition folder."""
    boot = tmp_path / "boot"
    boot.mkdir()
    config = Path(env["CLINIC_EDGE_DATA"]) / "config.toml"
    config.write_text('[web]\nlisten = "127.0.0.1:8080"\n')
    return {**env, "CLINIC_EDGE_CONFIG": str(config)}, boot


def _collect(pipe) -> tuple[list[str], threading.Thread]:
    """The lines a child writes to `pipe`, gathered by a thread as they come (until it closes)."""
    lines: list[str] = []

    def read() -> None:
        for line in iter(pipe.readline, ""):
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_first_boot_waits_for_the_hub_enrolls_and_removes_the_secrets(hub, box):
    env, boot = box
    data = Path(env["CLINIC_EDGE_DATA"])
    (boot / "clinic-edge.toml").write_text(hub.boot_file("shiqiao"))
    proc = subprocess.Popen([sys.executable, "-m", "edge", "firstboot", "--boot-file", str(boot / "clinic-edge.toml")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (stdout, out_reader), (stderr, err_reader) = _collect(proc.stdout), _collect(proc.stderr)
    # the first attempt finds no hub (the link is "not up yet"); the hub comes up once it said so
    wait_for(lambda: "retrying" in "".join(stderr), timeout=60, message="the first attempt to fail")
    hub.start()
    proc.wait(timeout=90)
    out_reader.join(10), err_reader.join(10)
    out, err = "".join(stdout), "".join(stderr)
    assert proc.returncode == 0, err
    # enrolled, keys made and private
    status = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    assert status["enrolled"] and status["hub"] == hub.url
    assert _mode(data / "secrets" / "sync-node.key") == 0o600
    assert _mode(data / "secrets") == 0o700
    for name in ("web-secret-key", "mqtt-ingest-password", "setup-code"):
        assert _mode(data / "secrets" / name) == 0o600, name
    assert _mode(data / "network" / "wpa_supplicant-wlan0.conf") == 0o600
    # the node certificate from the hub's county CA, pinned root beside it
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(hub.ca_file.read_bytes())
    x509.load_pem_x509_certificate((data / "tls" / "node-cert.pem").read_bytes()).verify_directly_issued_by(ca)
    assert (data / "tls" / "county-ca.pem").read_bytes() == hub.ca_file.read_bytes()
    assert _mode(data / "tls" / "node-key.pem") == 0o600 and _mode(data / "tls") == 0o700
    # the clinic is in the node's config; the boot partition no longer holds any secret
    cfg = config_mod.load(env=env)
    assert cfg["node"]["clinic_name"] == "石桥村卫生室" and cfg["node"]["division_code"] == "110105001002"
    assert cfg["web"]["listen"] == "127.0.0.1:8080", "the other sections were kept"
    assert list(boot.iterdir()) == [boot / firstboot.SETUP_CODE_NOTE]
    # the one-time setup code is on the console (stdout: journal+console), in the log and on the
    # boot partition; it is not the admin's password, and there is no fixed default
    code = _code_from_console(out)
    assert len(code) >= 12 and code in err and code in (boot / firstboot.SETUP_CODE_NOTE).read_text()
    node = Node(cfg)
    assert accounts.by_username(node.store, "admin")
    with pytest.raises(accounts.LoginRefused):
        accounts.authenticate(node.store, "admin", code, now=node.clock.now())
    node.close()
    # with each sync the node tells the hub how it is (disk, uptime, version, devices, backlog)
    clinic_edge(env, "sync", "--once", check=False, timeout=60)
    import sqlite3

    hub_db = sqlite3.connect(Path(hub.env["CLINIC_EDGE_DATA"]) / "hub" / "hub.db")
    reported = json.loads(hub_db.execute("SELECT status FROM hub_nodes WHERE name = 'shiqiao'").fetchone()[0])
    hub_db.close()
    health = reported["health"]
    assert health["version"] and health["uptime_s"] > 0 and 0 < health["disk_free_pct"] <= 100
    assert health["devices"]["registered"] == 0 and health["backlog"] >= 0
    import ssl

    from sync_fixtures import HubBrowser

    password = clinic_edge(hub.env, "hub", "user", "add", "it", "--role", "viewer", "--generate").stdout.split()[-1]
    browser = HubBrowser(hub.url, ssl.create_default_context(cafile=str(hub.ca_file)))   # the dashboard, logged in
    assert browser.login("it", password)[0] == 200
    page = browser.get("/")[1]
    row = page[page.index('data-node="shiqiao"'):]
    assert f"{health['disk_free_pct']}% free" in row[:row.index("</tr>")]


def _code_from_console(text: str) -> str:
    m = re.search(r"setup code for the admin account: (\S+)", text)
    assert m, text
    return m.group(1)


class Clock(SystemClock):
    """The real clock, moved forward on demand (expiry and throttling without waiting)."""

    def __init__(self):
        self.shift = timedelta()

    def now(self):
        return super().now() + self.shift


@pytest.fixture
def set_up(hub, box):
    """A box after first boot with a real hub; the setup code as county IT reads it on the console."""
    env, boot = box
    hub.start()
    (boot / "clinic-edge.toml").write_text(hub.boot_file("setup-page"))
    out = clinic_edge(env, "firstboot", "--boot-file", str(boot / "clinic-edge.toml"), timeout=90).stdout
    from edge.web import create_app

    clock = Clock()
    node = Node(config_mod.load(env=env), clock=clock)
    app = create_app(node=node)
    app.config["WTF_CSRF_ENABLED"] = False
    yield node, app.test_client(), _code_from_console(out), clock
    node.close()


def _post(client, code: str, password: str = "my-own-pass-1"):
    return client.post("/setup", data={"code": code, "password": password, "password2": password})


def test_anonymous_setup_page_shows_no_code_and_the_right_code_sets_the_admins_password_once(set_up):
    node, client, code, _ = set_up
    page = client.get("/setup").get_data(as_text=True)
    assert code not in page and 'name="code"' in page and "clinic-edge-setup-code.txt" in page
    wrong = _post(client, "aaaa-bbbb-cccc")
    assert wrong.status_code == 400 and "setup-error" in wrong.get_data(as_text=True)
    assert _post(client, code).status_code == 303
    assert 'name="code"' not in client.get("/setup").get_data(as_text=True)
    assert accounts.authenticate(node.store, "admin", "my-own-pass-1", now=node.clock.now())
    with pytest.raises(accounts.LoginRefused):
        accounts.authenticate(node.store, "admin", code, now=node.clock.now())
    again = _post(client, code, "someone-else-2")          # used: gone
    assert again.status_code == 200 and 'name="code"' not in again.get_data(as_text=True)
    assert accounts.authenticate(node.store, "admin", "my-own-pass-1", now=node.clock.now())


def test_wrong_codes_are_throttled_even_before_the_right_one(set_up):
    node, client, code, clock = set_up
    for _ in range(5):
        assert _post(client, "aaaa-bbbb-cccc").status_code == 400
    r = _post(client, code)
    assert r.status_code == 429 and "setup-error" in r.get_data(as_text=True)
    with pytest.raises(accounts.LoginRefused):
        accounts.authenticate(node.store, "admin", "my-own-pass-1", now=node.clock.now())
    clock.shift = timedelta(minutes=16)                   # the window has passed
    assert _post(client, code).status_code == 303


def test_an_expired_code_is_refused_and_county_it_issues_a_new_one_on_the_console(set_up, box):
    node, client, code, clock = set_up
    env, boot = box
    clock.shift = timedelta(hours=24, minutes=1)
    r = _post(client, code)
    assert r.status_code == 400 and "clinic-edge setup-code" in r.get_data(as_text=True)
    with pytest.raises(accounts.LoginRefused):
        accounts.authenticate(node.store, "admin", "my-own-pass-1", now=node.clock.now())
    out = clinic_edge({**env, "CLINIC_EDGE_APPLIANCE_BOOT_FILE": str(boot / "clinic-edge.toml")},
                      "setup-code").stdout
    fresh = _code_from_console(out)
    assert fresh in (boot / firstboot.SETUP_CODE_NOTE).read_text()
    clock.shift = timedelta()
    assert _post(client, code).status_code == 400          # the old one stopped working
    assert _post(client, fresh).status_code == 303
    assert clinic_edge(env, "setup-code", check=False).returncode != 0   # finished: no new codes


def test_a_wrong_enrollment_code_is_reported_and_nothing_is_deleted(hub, box):
    env, boot = box
    hub.start()
    hub.new_code("other-clinic")
    boot_file = boot / "clinic-edge.toml"
    boot_file.write_text(hub.boot_file("x", code="WRONG-CODE-0000"))
    out = clinic_edge(env, "firstboot", "--boot-file", str(boot_file), check=False, timeout=90)
    assert out.returncode == 3
    assert "refused" in out.stderr and "new enrollment code" in out.stderr
    assert boot_file.exists(), "the file stays so county IT can correct the code"
    assert not (Path(env["CLINIC_EDGE_DATA"]) / "secrets" / "setup-code").exists()
    from edge.web import create_app

    node = Node(config_mod.load(env=env))
    page = create_app(node=node).test_client().get("/setup").get_data(as_text=True)
    assert "setup-problem" in page and "new enrollment code" in page
    node.close()


def test_a_hub_that_does_not_match_the_boot_files_hub_key_is_not_enrolled_with(hub, box):
    env, boot = box
    hub.start()
    boot_file = boot / "clinic-edge.toml"
    boot_file.write_text(hub.boot_file("shiqiao", hub_key="cd" * 32))
    out = clinic_edge(env, "firstboot", "--boot-file", str(boot_file), check=False, timeout=90)
    assert out.returncode == 3
    assert "not trusted" in out.stderr and "hub_key" in out.stderr
    assert boot_file.exists()
    status = json.loads(clinic_edge(env, "sync", "status", "--json").stdout)
    assert not status["enrolled"] and not (Path(env["CLINIC_EDGE_DATA"]) / "tls" / "node-cert.pem").exists()


def test_an_unreachable_hub_is_retried_then_reported(box):
    env, boot = box
    boot_file = boot / "clinic-edge.toml"
    boot_file.write_text(BOOT_FILE.format(url=f"http://127.0.0.1:{free_port()}", code="ABCD", hub_key=""))
    out = clinic_edge(env, "firstboot", "--boot-file", str(boot_file), "--attempts", "2", check=False, timeout=60)
    assert out.returncode == 3 and "after 2 attempts" in out.stderr
    assert boot_file.exists()


@pytest.mark.parametrize("text, complaint", [
    ("[clinic]\nname='x'\n", "division_code"),
    ("not toml [", "not valid TOML"),
    ('[clinic]\nname="x"\ndivision_code="110105001002"\n[hub]\nurl="ftp://x"\ncode="c"\n', "[hub] url"),
    ('[clinic]\nname="x"\ndivision_code="110105001002"\n[hub]\nurl="http://hub.county:8470"\ncode="c"\n'
     'hub_key="' + "ab" * 32 + '"\n', "must be https://"),
    ('[clinic]\nname="x"\ndivision_code="110105001002"\n[hub]\nurl="https://hub.county:8470"\ncode="c"\n',
     "[hub] hub_key must be the hub key fingerprint"),
])
def test_a_bad_provisioning_file_says_what_to_fix(tmp_path, text, complaint):
    p = tmp_path / "clinic-edge.toml"
    p.write_text(text)
    with pytest.raises(ProvisioningError, match=complaint.replace("[", r"\[")):
        firstboot.read_boot_file(p)


ANALYSER_CONFIG = """\
[web]
listen = "127.0.0.1:8080"

[drivers.astm]
url = "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0"
baudrate = 9600
device_id = "hba1c-analyser"

[drivers.astm.codes]
HbA1c = "4548-4"
GLU = { code = "2339-0", unit = "mmol/L" }
"""


def test_first_boot_keeps_the_analyser_section_of_the_node_config(box):
    """County IT set up an ASTM analyser in the node's config before first boot; writing the
    clinic's name into that file must give back every section as it was (a hand-written TOML
    writer once turned [drivers.astm] into a quoted string and the analyser silently vanished)."""
    import tomllib
    env, _boot = box
    cfg = Path(env["CLINIC_EDGE_CONFIG"])
    cfg.write_text(ANALYSER_CONFIG)
    before = tomllib.loads(cfg.read_text())
    node = Node(config_mod.load(env=env))
    firstboot.write_node_config(node, {"name": "石桥村卫生室", "division_code": "110105001002"})
    after = tomllib.loads(cfg.read_text())
    assert after["drivers"] == before["drivers"]
    assert after["node"]["clinic_name"] == "石桥村卫生室"
    loaded = config_mod.load(env=env)       # the node still starts with it, analyser included
    assert loaded["drivers"]["astm"]["codes"]["GLU"] == {"code": "2339-0", "unit": "mmol/L"}


def _boot_node(box) -> Node:
    env, _boot = box
    return Node(config_mod.load(env=env))


def _first_boot_failure(node: Node, boot_file: Path, attempts: int | None = None) -> tuple[str, dict]:
    with pytest.raises(ProvisioningError) as failed:
        firstboot.run(node, boot_file, attempts=attempts, sleep=lambda s: None)
    return str(failed.value), node.read_status("firstboot") or {}


def test_the_enrollment_refusal_reaches_first_boot_as_the_sync_client_worded_it(hub, box, tmp_path, env):
    """First boot calls the sync client's enrollment (edge/core/enrollment.py): the reason the
    sync client gives for a refused code is what county IT reads, in the exception (the console)
    and on /setup (run/firstboot.json), word for word."""
    from edge.core.enrollment import EnrollmentRefused, enroller

    hub.start()
    hub.new_code("other-clinic")
    _env, boot = box
    boot_file = boot / "clinic-edge.toml"
    boot_file.write_text(hub.boot_file("x", code="WRONG-CODE-0000"))
    other_env = {**env, "CLINIC_EDGE_DATA": str(tmp_path / "other-box")}
    other = Node(config_mod.load(env=other_env))
    with pytest.raises(EnrollmentRefused) as refused:
        enroller()(other, hub.url, "WRONG-CODE-0000", hub.fingerprint)
    other.close()
    reason = str(refused.value)
    assert reason == "enrollment refused: unknown enrollment code"
    node = _boot_node(box)
    try:
        text, status = _first_boot_failure(node, boot_file)
    finally:
        node.close()
    assert text == f"the hub refused the enrollment code: {reason}. {firstboot.REFUSED_HINT}"
    assert (status["state"], status["message"]) == ("refused", text)


def test_an_untrusted_hub_and_an_unreachable_one_reach_first_boot_with_the_sync_clients_reason(hub, box):
    from edge.core.enrollment import HubNotTrusted, HubUnreachable, enroller

    hub.start()
    _env, boot = box
    boot_file = boot / "clinic-edge.toml"
    boot_file.write_text(hub.boot_file("shiqiao", hub_key="cd" * 32))
    node = _boot_node(box)
    try:
        text, status = _first_boot_failure(node, boot_file)
        assert (status["state"], status["message"]) == ("untrusted", text)
        with pytest.raises(HubNotTrusted) as untrusted:     # the same hub, key and a valid code
            enroller()(node, hub.url, hub.new_code("shiqiao-2"), "cd" * 32)
        assert text == f"the hub was not trusted: {untrusted.value}. {firstboot.UNTRUSTED_HINT}"
        dead = f"http://127.0.0.1:{free_port()}"
        boot_file.write_text(BOOT_FILE.format(url=dead, code="ABCD", hub_key=""))
        text, status = _first_boot_failure(node, boot_file, attempts=2)
        with pytest.raises(HubUnreachable) as unreachable:
            enroller()(node, dead, "ABCD", None)
    finally:
        node.close()
    assert text == f"could not reach the hub at {dead} after 2 attempts: {unreachable.value}"
    assert (status["state"], status["message"], status["last_error"]) == ("unreachable", text, str(unreachable.value))
