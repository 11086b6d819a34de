"""The unit files in systemd/: `systemd-analyze verify` finds nothing to say (stderr empty: it
returns 0 on some mistakes) and `systemd-analyze security --offline=true` scores every service at
most 3.5 ("OK"); docs/security.md, "Checking the service units"."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "systemd"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
NODE_SERVICES = ["clinic-edge-web.service", "clinic-edge-ingest.service", "clinic-edge-sync.service",
                 "clinic-edge-broker.service"]
LONG_RUNNING = NODE_SERVICES + ["clinic-edge-hub.service"]

pytestmark = pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory) -> Path:
    """A minimal root for `verify --root`: the host's stock units, our units, our ExecStart paths."""
    root = tmp_path_factory.mktemp("unitroot")
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS.glob("*"):
        if unit.suffix in (".service", ".timer", ".path"):
            shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    for exe in ("opt/clinic-edge/current/bin/clinic-edge", "usr/bin/kill", "bin/kill"):
        p = root / exe
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\n")
        p.chmod(0o755)
    return root


def test_every_expected_unit_exists():
    for name in LONG_RUNNING + ["clinic-edge-firstboot.service", "clinic-edge-backup.service",
                                "clinic-edge-backup.timer", "sysusers-clinic-edge.conf", "tmpfiles-clinic-edge.conf"]:
        assert (UNITS / name).is_file(), name


@pytest.mark.parametrize("unit", SERVICES + ["clinic-edge-backup.timer", "clinic-edge-update.path"])
def test_unit_verifies_cleanly(unit_root, unit):
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={unit_root}",
                           str(unit_root / "etc/systemd/system" / unit)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr + proc.stdout


def test_verify_would_catch_a_typo(unit_root, tmp_path):
    """The check above is not vacuous: an unknown key makes verify talk."""
    bad = unit_root / "etc/systemd/system/clinic-edge-typo.service"
    bad.write_text((UNITS / "clinic-edge-web.service").read_text().replace("ProtectHome=", "ProtectHomes="))
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={unit_root}", str(bad)],
                          capture_output=True, text=True)
    bad.unlink()
    assert "ProtectHomes" in proc.stderr


@pytest.mark.parametrize("unit", SERVICES)
def test_unit_security_exposure_is_at_most_3_5(unit):
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=35",
                           "--no-pager", str(UNITS / unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    assert float(m.group(1)) <= 3.5 and proc.returncode == 0, proc.stdout[-2000:]


def _directives(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (UNITS / unit).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_long_running_units_are_notify_with_watchdog_and_restart(unit):
    d = _directives(unit)
    assert d["Type"] == ["notify"]
    assert d["Restart"] == ["on-failure"]
    assert "StartLimitBurst" in d and "StartLimitIntervalSec" in d
    if unit != "clinic-edge-broker.service":  # mosquitto sends READY=1 but has no watchdog
        assert d.get("WatchdogSec"), unit
    for key in ("ProtectSystem", "StateDirectory", "PrivateTmp", "NoNewPrivileges", "ProtectHome"):
        assert key in d, (unit, key)
    assert d["CapabilityBoundingSet"] == [""]


@pytest.mark.parametrize("unit", NODE_SERVICES + ["clinic-edge-firstboot.service", "clinic-edge-backup.service"])
def test_node_units_share_one_static_user(unit):
    d = _directives(unit)
    assert d["User"] == ["clinic-edge"] and "DynamicUser" not in d
    assert d["Environment"][0].startswith("CLINIC_EDGE_DATA=/var/lib/clinic-edge")


def test_only_ingest_reaches_serial_devices():
    ingest = _directives("clinic-edge-ingest.service")
    assert ingest["DevicePolicy"] == ["closed"]
    assert all(a.startswith("char-tty") for a in ingest["DeviceAllow"])
    for unit in set(NODE_SERVICES) - {"clinic-edge-ingest.service"}:
        assert _directives(unit)["PrivateDevices"] == ["yes"]


def test_sysusers_declares_the_node_user_without_password():
    text = (UNITS / "sysusers-clinic-edge.conf").read_text()
    assert re.search(r"^u clinic-edge .*/usr/sbin/nologin$", text, re.M)


# docs/operations.md, "Memory": from bench/memory.py and each service's heaviest on-demand work
MEMORY_MAX = {"clinic-edge-web.service": "192M", "clinic-edge-ingest.service": "128M",
              "clinic-edge-sync.service": "128M", "clinic-edge-broker.service": "64M"}


@pytest.mark.parametrize("unit", NODE_SERVICES)
def test_node_units_cap_their_memory(unit):
    assert _directives(unit).get("MemoryMax") == [MEMORY_MAX[unit]]
