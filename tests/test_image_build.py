"""The appliance image, built by the suite with the same recipe as `image/build` (debos), for the
host's architecture (amd64: same recipe, parameterised arch; arm64 under qemu-user is for
`image/build` itself). The base root is cached in $CLINIC_EDGE_TEST_CACHE/image between runs (the
first run debootstraps: a few minutes). The .img file's partitions are attached with loop devices
at their offsets and inspected; then the root is booted with `systemd-nspawn --boot` (read-only
root under a RAM overlay, like the appliance), first boot runs against a real local hub, the
services reach `active` and /healthz answers from inside."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from appliance_release import CACHE, dependency_wheels
from conftest import clinic_edge, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
NEEDS = ("debos", "debootstrap", "losetup", "sfdisk", "mkfs.vfat", "mcopy", "systemd-nspawn")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="building an image needs root (loop devices, chroot)"),
]


def _missing() -> list[str]:
    return [t for t in NEEDS if not shutil.which(t)]


def sh(*cmd: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


class Image:
    """The .img file; `attach()` mounts its partitions through loop devices at their offsets."""

    def __init__(self, path: Path):
        self.path = path
        self.table = json.loads(sh("sfdisk", "--json", str(path)).stdout)["partitiontable"]
        self.parts = self.table["partitions"]

    def attach(self, stack: ExitStack, index: int, where: Path, *, readonly: bool) -> str:
        p = self.parts[index]
        sector = self.table.get("sectorsize", 512)
        loop = sh("losetup", "-f", "--show", *(["-r"] if readonly else []), "--offset", str(p["start"] * sector),
                  "--sizelimit", str(p["size"] * sector), str(self.path)).stdout.strip()
        stack.callback(sh, "losetup", "-d", loop, check=False)
        where.mkdir(parents=True, exist_ok=True)
        sh("mount", *(["-o", "ro"] if readonly else []), loop, str(where))
        stack.callback(sh, "umount", "-l", str(where), check=False)
        return loop


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    sh(sys.executable, "-m", "edge", "update", "keygen", "--out", str(d))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "county-it", "-f", str(d / "county")) \
        if shutil.which("ssh-keygen") else (d / "county.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5ldmVyVXNlZEluVGVzdHNPbmx5S2V5Rm9yQ291bnR5SVQx county-it\n")
    return d


@pytest.fixture(scope="module")
def image(tmp_path_factory, keys) -> Image:
    if _missing():
        pytest.fail(f"missing tools {_missing()}: apt-get install debos debootstrap dosfstools mtools fdisk systemd-container")
    out = tmp_path_factory.mktemp("image-out")
    env = {**os.environ, "CLINIC_EDGE_IMAGE_CACHE": str(CACHE / "image"), "PYTHON": sys.executable,
           "TMPDIR": str(out)}
    started = time.monotonic()
    p = subprocess.run([str(ROOT / "image" / "build"), "--arch", ARCH, "--no-compress", "--no-kernel",
                        "--imagesize", "2600MB", "--out", str(out), "--wheels", str(dependency_wheels()),
                        "--release-key", str(keys / "release.pub"), "--county-key", str(keys / "county.pub")],
                       env=env, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-6000:]
    print(f"image built in {time.monotonic() - started:.0f} s")
    img = out / f"clinic-edge-{VERSION}-{ARCH}.img"
    assert (out / f"{img.name}.sha256").read_text().split()[0] == sh("sha256sum", str(img)).stdout.split()[0]
    return Image(img)


@pytest.fixture(scope="module")
def root(image, tmp_path_factory):
    """The image's partitions mounted read-only as they are on the box."""
    base = tmp_path_factory.mktemp("mnt")
    with ExitStack() as stack:
        r = base / "root"
        image.attach(stack, 1, r, readonly=True)
        image.attach(stack, 2, base / "data", readonly=True)
        for src, dst in (("opt", "opt/clinic-edge"), ("clinic-edge", "var/lib/clinic-edge")):  # as fstab binds
            sh("mount", "--bind", str(base / "data" / src), str(r / dst))
            stack.callback(sh, "umount", "-l", str(r / dst), check=False)
        yield {"root": r, "data": base / "data"}


def test_the_image_has_boot_root_and_data_partitions(image):
    assert image.table["label"] == "dos"
    types = [p["type"] for p in image.parts]
    assert len(types) == 3 and types[0] in ("c", "b", "e") and types[1:] == ["83", "83"]
    assert image.parts[0].get("bootable")
    labels = {sh("blkid", "-o", "value", "-s", "LABEL", "--probe", "--offset",
                 str(p["start"] * 512), str(image.path)).stdout.strip() for p in image.parts}
    assert labels == {"BOOT", "clinic-root", "clinic-data"}


def test_the_boot_partition_is_fat_and_says_where_the_provisioning_file_goes(image):
    offset = image.parts[0]["start"] * image.table.get("sectorsize", 512)
    listing = sh("mdir", "-b", "-i", f"{image.path}@@{offset}", "::/").stdout
    assert "README.TXT" in listing.upper()


def test_the_project_is_in_its_versioned_virtualenv(root):
    r = root["root"]
    assert os.readlink(r / "opt/clinic-edge/current") == VERSION
    venv = r / "opt/clinic-edge" / VERSION
    assert (venv / "bin/clinic-edge").exists()
    assert list((venv / "lib").glob(f"python3*/site-packages/clinic_edge-{VERSION}.dist-info"))


def test_the_units_are_installed_enabled_and_verify(root):
    r = root["root"]
    wants = r / "etc/systemd/system/multi-user.target.wants"
    for unit in ("clinic-edge-web", "clinic-edge-ingest", "clinic-edge-sync", "clinic-edge-broker",
                 "clinic-edge-firstboot", "ssh"):
        assert (wants / f"{unit}.service").is_symlink(), unit
    assert (r / "etc/systemd/system/sysinit.target.wants/nftables.service").is_symlink()
    assert (r / "etc/systemd/system/timers.target.wants/clinic-edge-backup.timer").is_symlink()
    assert (r / "etc/systemd/system/paths.target.wants/clinic-edge-update.path").is_symlink()
    assert os.readlink(r / "etc/systemd/system/mosquitto.service") == "/dev/null"
    for unit in sorted((ROOT / "systemd").glob("*.service")):
        p = sh("systemd-analyze", "verify", f"--root={r}", str(r / "usr/lib/systemd/system" / unit.name), check=False)
        assert p.returncode == 0 and p.stderr == "", (unit.name, p.stderr)


def test_fstab_mounts_the_data_partition_noatime(root):
    lines = {l.split()[1]: l.split() for l in (root["root"] / "etc/fstab").read_text().splitlines()
             if l.strip() and not l.startswith("#")}
    data = lines["/data"]
    assert data[0] == "LABEL=clinic-data" and data[2] == "ext4" and "noatime" in data[3].split(",")
    assert lines["/var/lib/clinic-edge"][:3] == ["/data/clinic-edge", "/var/lib/clinic-edge", "none"]
    assert "bind" in lines["/var/lib/clinic-edge"][3] and "bind" in lines["/opt/clinic-edge"][3]
    assert lines["/boot/firmware"][0] == "LABEL=BOOT"
    assert (root["data"] / "clinic-edge/config.toml").exists(), "the data partition carries the appliance's config"
    assert list((root["data"] / "opt").iterdir()), "the virtualenvs live on the data partition (updates persist)"
    assert os.readlink(root["root"] / "etc/clinic-edge/config.toml") == "/var/lib/clinic-edge/config.toml"


def test_no_account_has_a_password(root):
    for line in (root["root"] / "etc/shadow").read_text().splitlines():
        name, pw = line.split(":")[:2]
        assert pw.startswith(("!", "*")) or pw == "", f"{name} has a password"
    sshd = (root["root"] / "etc/ssh/sshd_config.d/clinic-edge.conf").read_text()
    assert "PasswordAuthentication no" in sshd and "KbdInteractiveAuthentication no" in sshd
    assert "county-it" in (root["root"] / "etc/ssh/authorized_keys/county").read_text()
    assert not list((root["root"] / "etc/ssh").glob("ssh_host_*")), "host keys must be made per box"


def test_the_firewall_opens_only_web_mqtt_on_the_lan_and_ssh(root):
    rules = (root["root"] / "etc/nftables.conf").read_text()
    assert "policy drop;" in rules
    accepted = re.findall(r"tcp dport (\d+)[^\n]*accept", rules)  # inbound TCP services
    assert sorted(set(accepted)) == ["1883", "22", "8080"]
    for line in rules.splitlines():
        if re.search(r"dport (8080|1883) accept", line):
            assert "saddr $LAN" in line, line
    if shutil.which("nft"):
        p = sh("nft", "-c", "-f", str(root["root"] / "etc/nftables.conf"), check=False)
        assert p.returncode == 0, p.stderr


def test_release_key_journald_and_overlay_root(root):
    r = root["root"]
    assert (r / "etc/clinic-edge/release.pub").read_text().strip()
    assert "Storage=volatile" in (r / "etc/systemd/journald.conf.d/clinic-edge.conf").read_text()
    assert os.access(r / "etc/initramfs-tools/scripts/init-bottom/clinic-edge-overlay", os.X_OK)
    assert (r / "usr/bin/mosquitto").exists() or (r / "usr/sbin/mosquitto").exists()
    assert (r / "usr/sbin/bluetoothd").exists() or (r / "usr/libexec/bluetooth/bluetoothd").exists()
    assert (r / "sbin/fake-hwclock").exists() or (r / "usr/sbin/fake-hwclock").exists()


# --- the built root, booted -------------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


class Container:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.init = wait_for(self._find_init, timeout=60, interval=0.2, message="the container's systemd")

    def _find_init(self) -> int | None:
        for p in _descendants(self.proc.pid):
            try:
                if Path(f"/proc/{p}/comm").read_text().strip() == "systemd":
                    return p
            except OSError:
                pass
        return None

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-t", str(self.init), "-m", "-u", "-i", "-n", "-p", "--", *cmd],
                              capture_output=True, text=True, timeout=timeout)

    def active(self, unit: str) -> str:
        return self.run("systemctl", "is-active", unit).stdout.strip()


def _uid(root: Path, user: str) -> int:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2])
    raise KeyError(user)


@pytest.fixture(scope="module")
def booted(image, tmp_path_factory):
    from test_firstboot_provisioning import BOOT_FILE, Hub

    base = tmp_path_factory.mktemp("boot")
    hub = Hub(base).start()
    code = hub.new_code("image-boot")
    web_port, mqtt_port = free_port(), free_port()
    with ExitStack() as stack:
        stack.callback(hub.stop)
        r, data, boot = base / "root", base / "data", base / "bootpart"
        image.attach(stack, 1, r, readonly=True)
        image.attach(stack, 2, data, readonly=False)
        uid = _uid(r, "clinic-edge")
        boot.mkdir()
        (boot / "clinic-edge.toml").write_text(BOOT_FILE.format(url=hub.url, code=code).split("[wifi]")[0])
        os.chown(boot, uid, uid)
        os.chown(boot / "clinic-edge.toml", uid, uid)
        cfg = data / "clinic-edge/config.toml"  # free ports: the container shares this machine's network
        cfg.write_text(cfg.read_text().replace("0.0.0.0:8080", f"127.0.0.1:{web_port}")
                       .replace("0.0.0.0:1883", f"127.0.0.1:{mqtt_port}")
                       + f'\n[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt_port}"\n')
        empty = base / "fstab"
        empty.write_text("# mounts are made by systemd-nspawn in this test\n")
        log = open(base / "console.log", "wb")
        stack.callback(log.close)
        masks = ["nftables.service", "ssh.service", "systemd-networkd.service", "systemd-networkd-wait-online.service",
                 "systemd-timesyncd.service", "wpa_supplicant@wlan0.service"]  # they would act on this machine
        proc = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--boot", "--volatile=overlay", "-D", str(r),
             f"--bind={data}:/data", f"--bind={data}/clinic-edge:/var/lib/clinic-edge",
             f"--bind={data}/opt:/opt/clinic-edge", f"--bind={boot}:/boot/firmware", f"--bind-ro={empty}:/etc/fstab",
             *[f"systemd.mask={m}" for m in masks]],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def shutdown():
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        stack.callback(shutdown)
        c = Container(proc)
        yield {"c": c, "data": data, "boot": boot, "web_port": web_port, "hub": hub, "log": base / "console.log"}


def test_booted_root_runs_first_boot_against_the_local_hub(booted):
    c = booted["c"]
    status = booted["data"] / "clinic-edge/run/firstboot.json"
    try:
        wait_for(lambda: status.exists() and json.loads(status.read_text())["state"] == "done", timeout=180,
                 interval=1, message="first boot to finish")
    except TimeoutError:
        raise AssertionError(c.run("journalctl", "--no-pager", "-u", "clinic-edge-firstboot").stdout[-3000:])
    assert not (booted["boot"] / "clinic-edge.toml").exists(), "secrets left on the boot partition"
    assert (booted["data"] / "clinic-edge/secrets/setup-code").exists()
    export = clinic_edge(booted["hub"].env, "hub", "export", "--json", check=False)
    assert export.returncode == 0


def test_booted_services_reach_active_and_healthz_answers_inside(booted):
    c = booted["c"]
    units = ["clinic-edge-broker.service", "clinic-edge-ingest.service", "clinic-edge-web.service",
             "clinic-edge-sync.service"]
    try:
        wait_for(lambda: all(c.active(u) == "active" for u in units), timeout=240, interval=2,
                 message="the node's services to be active")
    except TimeoutError:
        states = {u: c.active(u) for u in units}
        journal = c.run("journalctl", "--no-pager", "-n", "60", "-u", "clinic-edge-*").stdout
        raise AssertionError(f"{states}\n{journal[-4000:]}")
    url = f"http://127.0.0.1:{booted['web_port']}/healthz"
    body = wait_for(lambda: (lambda p: p.returncode == 0 and json.loads(p.stdout))(c.run("curl", "-sf", url)),
                    timeout=60, interval=1, message="/healthz inside the container")
    assert body["ok"] and body["store"] == "ok" and body["version"] == VERSION
    wait_for(lambda: json.loads(c.run("curl", "-sf", url).stdout).get("broker_connected"), timeout=60, interval=1,
             message="ingest connected to the broker inside the container")


def test_booted_nightly_backup_unit_writes_a_backup(booted):
    c = booted["c"]
    p = c.run("systemctl", "start", "clinic-edge-backup.service", timeout=120)
    assert p.returncode == 0, p.stderr + c.run("journalctl", "--no-pager", "-u", "clinic-edge-backup").stdout[-2000:]
    backups = list((booted["data"] / "clinic-edge/backups").glob("clinic-edge-*.db"))
    assert backups, "no backup written"
    doctor = c.run("runuser", "-u", "clinic-edge", "--", "env", "CLINIC_EDGE_DATA=/var/lib/clinic-edge",
                   "/opt/clinic-edge/current/bin/clinic-edge", "doctor", "--json", timeout=60)
    findings = {f["check"]: f for f in json.loads(doctor.stdout)}
    assert findings["database"]["level"] == "ok" and findings["broker"]["level"] == "ok", findings
    assert findings["hub"]["level"] == "ok", findings["hub"]


def test_booted_watchdog_restarts_a_hung_web_service(booted):
    """SIGSTOP freezes the web service: no more WATCHDOG=1, so systemd kills and restarts it.
    (WatchdogSec is shortened to 3 s by a runtime drop-in so the test does not wait a minute.)"""
    c = booted["c"]
    dropin = "/run/systemd/system/clinic-edge-web.service.d"
    assert c.run("sh", "-c", f"mkdir -p {dropin} && printf '[Service]\\nWatchdogSec=3s\\n' > {dropin}/test.conf"
                 " && systemctl daemon-reload && systemctl restart clinic-edge-web").returncode == 0
    pid = c.run("systemctl", "show", "-P", "MainPID", "clinic-edge-web").stdout.strip()
    assert pid != "0" and c.active("clinic-edge-web.service") == "active"
    c.run("kill", "-STOP", pid)
    wait_for(lambda: c.run("systemctl", "show", "-P", "MainPID", "clinic-edge-web").stdout.strip() not in (pid, "0")
             and c.active("clinic-edge-web.service") == "active", timeout=60, interval=1,
             message="systemd to restart the hung web service")
    journal = c.run("journalctl", "--no-pager", "-u", "clinic-edge-web").stdout
    assert "Watchdog timeout" in journal or "watchdog" in journal.lower()
