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


# The two longest boots (an update fetched from the hub and installed inside the VM, and two more
# full power cycles) take about 15 minutes in software emulation, more than the rest of the suite
# allows; they run when CLINIC_EDGE_TEST_VM_LONG=1, which county IT and the release checklist do
# before every release (docs/operations.md, "Before a release").
LONG_VM = pytest.mark.skipif(os.environ.get("CLINIC_EDGE_TEST_VM_LONG") != "1",
                             reason="long VM boot: set CLINIC_EDGE_TEST_VM_LONG=1 (docs/operations.md)")


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
    p = subprocess.run([str(ROOT / "image" / "build"), "--arch", ARCH, "--no-compress",
                        "--imagesize", "2600MB", "--out", str(out), "--wheels", str(dependency_wheels()),
                        "--release-key", str(keys / "release.pub"), "--county-key", str(keys / "county.pub")],
                       env=env, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-6000:]
    print(f"image built in {time.monotonic() - started:.0f} s")
    img = out / f"clinic-edge-{VERSION}-{ARCH}.img"
    assert (out / f"{img.name}.sha256").read_text().split()[0] == sh("sha256sum", str(img)).stdout.split()[0]
    # the card as flashed, for the virtual machine (the container tests below write to the image)
    sh("cp", "--sparse=always", str(img), str(out / "as-flashed.img"), timeout=300)
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
    # the broker's journal plugin, built on the build host for this source; no compiler on the box
    from device_drivers.mqtt import journal_plugin
    assert (venv / "lib/clinic-edge" / journal_plugin.file_name()).is_file()
    assert not (r / "usr/bin/gcc").exists() and not (r / "usr/include/mosquitto_broker.h").exists()


def test_the_units_are_installed_enabled_and_verify(root):
    r = root["root"]
    wants = r / "etc/systemd/system/multi-user.target.wants"
    for unit in ("clinic-edge-web", "clinic-edge-ingest", "clinic-edge-sync", "clinic-edge-direct",
                 "clinic-edge-broker", "clinic-edge-firstboot", "ssh"):
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
    assert sorted(set(accepted)) == ["1883", "22", "8080", "8443", "8883"]
    for line in rules.splitlines():
        if re.search(r"dport (8080|8443|8883|1883) accept", line):
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
    https_port, mqtts_port = free_port(), free_port()
    with ExitStack() as stack:
        stack.callback(hub.stop)
        r, data, boot = base / "root", base / "data", base / "bootpart"
        image.attach(stack, 1, r, readonly=True)
        image.attach(stack, 2, data, readonly=False)
        uid = _uid(r, "clinic-edge")
        boot.mkdir()
        (boot / "clinic-edge.toml").write_text(BOOT_FILE.format(url=hub.url, code=code, hub_key=hub.fingerprint).split("[wifi]")[0])
        os.chown(boot, uid, uid)
        os.chown(boot / "clinic-edge.toml", uid, uid)
        cfg = data / "clinic-edge/config.toml"  # free ports: the container shares this machine's network
        cfg.write_text(cfg.read_text().replace("0.0.0.0:8080", f"127.0.0.1:{web_port}")
                       .replace("0.0.0.0:8443", f"127.0.0.1:{https_port}")
                       .replace("0.0.0.0:8883", f"127.0.0.1:{mqtts_port}")
                       .replace("127.0.0.1:1883", f"127.0.0.1:{mqtt_port}")
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
        yield {"c": c, "data": data, "boot": boot, "web_port": web_port, "https_port": https_port,
               "mqtts_port": mqtts_port, "hub": hub, "log": base / "console.log"}


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
    from cryptography import x509   # the node certificate, from the real local hub's county CA

    ca = x509.load_pem_x509_certificate(booted["hub"].ca_file.read_bytes())
    cert = booted["data"] / "clinic-edge/tls/node-cert.pem"
    x509.load_pem_x509_certificate(cert.read_bytes()).verify_directly_issued_by(ca)
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
    # a box that sends through the hub: the direct sender ends cleanly, not in a restart loop
    def direct_unit() -> dict[str, str]:
        out = c.run("systemctl", "show", "--property=Result,ActiveState,NRestarts", "clinic-edge-direct.service")
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    try:
        wait_for(lambda: direct_unit() == {"Result": "success", "ActiveState": "inactive", "NRestarts": "0"},
                 timeout=60, interval=1, message="clinic-edge-direct.service to end with success and no restart")
    except TimeoutError:
        journal = c.run("journalctl", "--no-pager", "-n", "30", "-u", "clinic-edge-direct").stdout
        raise AssertionError(f"{direct_unit()}\n{journal[-3000:]}")
    # the units serve TLS with the node certificate: HTTPS for the web UI, MQTT on the TLS port;
    # the plain HTTP port (above, /healthz for the update's health check) redirects everything else
    import socket
    import ssl

    trusted = ssl.create_default_context(cafile=str(booted["hub"].ca_file))
    for port in (booted["https_port"], booted["mqtts_port"]):
        with socket.create_connection(("127.0.0.1", port), 10) as s, \
                trusted.wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert t.getpeercert()["subject"] == ((("commonName", "image-boot"),),)
        with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(("127.0.0.1", port), 10) as s:
            ssl.create_default_context().wrap_socket(s, server_hostname="127.0.0.1")
    redirect = c.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                     f"http://127.0.0.1:{booted['web_port']}/login").stdout
    assert redirect == f"308 https://127.0.0.1:{booted['https_port']}/login", redirect


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


# --- the whole card, booted in a virtual machine -------------------------------------------------------
# The .img as county IT flashes it, started by qemu (software emulation) from the kernel,
# initramfs and command line on its own boot partition, as the Pi's firmware does: the initramfs puts
# the root under its RAM overlay, fstab mounts the data partition, first boot enrolls with a real hub.
# The machine's network is closed (restrict=on) but for the hub (guestfwd) and its web port (hostfwd).

HUB_IN_VM = "10.0.2.100:8470"
QEMU = {"x86_64": ["qemu-system-x86_64", "-machine", "q35"], "aarch64": ["qemu-system-aarch64", "-machine", "virt"]}


class VM:
    def __init__(self, disk: Path, base: Path, hub_port: int):
        self.disk, self.base, self.hub_port = disk, base, hub_port
        self.web_port, self.ssh_port = free_port(), free_port()   # the box's 8443 (HTTPS) and 22
        self.trusted = None                                         # an SSL context with the county root
        self.proc: subprocess.Popen | None = None
        self.boots = 0
        sector = 512
        self.table = json.loads(sh("sfdisk", "--json", str(disk)).stdout)["partitiontable"]
        self.fat = f"{disk}@@{self.table['partitions'][0]['start'] * sector}"

    def boot_file(self, name: str) -> Path:
        """A file from the card's boot partition (what the Pi's firmware reads)."""
        out = self.base / name
        sh("mcopy", "-o", "-n", "-i", self.fat, f"::/{name}", str(out))
        return out

    def boot_listing(self) -> list[str]:
        return [l.split("/")[-1].lower() for l in sh("mdir", "-b", "-i", self.fat, "::/").stdout.split()]

    def start(self, *, write_bytes_per_s: int | None = None) -> None:
        """Power on. write_bytes_per_s: a card that slow to write (qemu's block throttling)."""
        self.boots += 1
        # software emulation by default: this machine's /dev/kvm (nested) hangs a guest kernel at once
        accel = os.environ.get("CLINIC_EDGE_TEST_VM_ACCEL", "tcg")
        cmdline = self.boot_file("cmdline.txt").read_text().strip()
        relay = f"cmd:{sys.executable} {ROOT / 'tests' / 'vm_relay.py'} {self.hub_port}"
        self.console = self.base / f"console-{self.boots}.log"
        self.proc = subprocess.Popen(
            [*QEMU[os.uname().machine], "-accel", accel, "-cpu", "host" if accel == "kvm" else "max",
             "-m", "2048", "-smp", "2", "-display", "none", "-monitor", "none", "-no-reboot",
             "-serial", f"file:{self.console}",
             "-kernel", str(self.boot_file("vmlinuz")), "-initrd", str(self.boot_file("initrd.img")),
             "-append", f"{cmdline} systemd.journald.forward_to_console=1",
             "-drive", f"file={self.disk},format=raw,if=virtio"
                       + (f",throttling.bps-write={write_bytes_per_s}" if write_bytes_per_s else ""),
             "-nic", f"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:{self.web_port}-:8443,"
                     f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
                     f"guestfwd=tcp:{HUB_IN_VM}-{relay}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.base / "qemu.err", "ab"))

    def power_cut(self) -> None:
        """Pull the plug: nothing in the machine gets to flush or unmount."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def ssh(self, key: Path, command: str, *, check: bool = True) -> str:
        """A command run on the box as county IT runs it (key login, sudo without a password)."""
        p = subprocess.run(["ssh", "-i", str(key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "county@127.0.0.1", command],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 or not check, f"{command}: {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p.stdout

    def tail(self) -> str:
        return self.console.read_text(errors="replace")[-5000:] if self.console.exists() else "(no console)"

    def get(self, path: str, opener=None) -> tuple[int, str]:
        import urllib.error
        import urllib.request
        try:
            with (opener or self.opener()).open(f"https://127.0.0.1:{self.web_port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def opener(self, *handlers):
        """A browser of a clinic PC where county IT installed the county root."""
        import urllib.request

        return urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.trusted), *handlers)

    def ssh_host_key(self) -> str | None:
        """The box's SSH host key as county IT's `ssh` would first see it."""
        p = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(self.ssh_port), "127.0.0.1"],
                           capture_output=True, text=True, timeout=30)
        keys = [l.split(None, 1)[1] for l in p.stdout.splitlines() if l and not l.startswith("#")]
        return keys[0] if keys else None

    def healthz(self) -> dict | None:
        status, body = self.get("/healthz")
        return json.loads(body) if status == 200 else None

    # a first boot under TCG on a machine busy with other tests took 7 minutes to a healthy box
    def wait_healthy(self, timeout: float = 900) -> dict:
        try:
            return wait_for(lambda: (lambda h: h if h and h.get("ok") and h.get("broker_connected") else None)(
                self.healthz()), timeout=timeout, interval=2, message="the booted card's /healthz")
        except TimeoutError:
            raise AssertionError(f"no healthy /healthz from the VM; console:\n{self.tail()}")


GROW_LOG = "clinic-edge-grow-data"          # what the initramfs's grow script logs as (kernel log, console)
MARKER = "before-grow.txt"                  # put on the data partition before the card first powers on
MARKER_TEXT = "records written before the data partition grew\n"
FS_SLACK = 9 << 20     # a grown file system ends this close to the card's end (1 MiB alignment + a last group)


def _superblock(dumpe2fs: str) -> dict:
    fields = dict(line.split(":", 1) for line in dumpe2fs.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields.items()}


def _card_data(disk: Path) -> dict:
    """The data partition and its file system as the powered-off card holds them (bytes)."""
    part = json.loads(sh("sfdisk", "--json", str(disk)).stdout)["partitiontable"]["partitions"][2]
    start = part["start"] * 512
    sb = _superblock(sh("dumpe2fs", "-h", f"{disk}?offset={start}").stdout)
    return {"card": disk.stat().st_size, "start": start, "end": start + part["size"] * 512,
            "fs": int(sb["Block count"]) * int(sb["Block size"]), "state": sb["Filesystem state"],
            "block": int(sb["Block size"]), "inodes_per_group": int(sb["Inodes per group"]),
            "bytes_per_inode": int(sb["Blocks per group"]) * int(sb["Block size"]) // int(sb["Inodes per group"])}


def _fsck_card_data(disk: Path) -> subprocess.CompletedProcess:
    """e2fsck -f -n of the powered-off card's data file system (reads only)."""
    part = json.loads(sh("sfdisk", "--json", str(disk)).stdout)["partitiontable"]["partitions"][2]
    return sh("e2fsck", "-f", "-n", f"{disk}?offset={part['start'] * 512}", check=False, timeout=300)


def _booted_data(m: "VM", key: Path) -> dict:
    """/data on the running box: what is mounted there, the sizes the kernel and the superblock give,
    the marker file, and this boot's kernel log lines of the initramfs's grow script."""
    out = m.ssh(key, "src=$(findmnt -n -o SOURCE /data); n=${src##*/}; d=$(lsblk -n -o PKNAME \"$src\"); "
                     "echo \"== mount\"; findmnt -n -o SOURCE,FSTYPE /data; "
                     "echo \"== sectors\"; cat /sys/class/block/$d/size /sys/class/block/$n/start /sys/class/block/$n/size; "
                     "echo \"== superblock\"; sudo dumpe2fs -h \"$src\" 2>/dev/null; "
                     f"echo \"== marker\"; cat /data/{MARKER}; "
                     f"echo \"== log\"; sudo journalctl -b -k -o short --no-pager | grep {GROW_LOG} || true")
    parts = re.split(r"^== (\w+)\n", out, flags=re.M)[1:]
    sections = dict(zip(parts[::2], parts[1::2]))
    card, start, size = (int(x) * 512 for x in sections["sectors"].split())
    sb = _superblock(sections["superblock"])
    return {"mount": sections["mount"].split(), "card": card, "start": start, "end": start + size,
            "fs": int(sb["Block count"]) * int(sb["Block size"]), "marker": sections["marker"],
            "log": sections["log"].splitlines()}


def _cut_while_growing(m: "VM") -> dict:
    """Power the card on as a slow card (64 KiB/s of writes: the grow takes seconds) and pull the plug
    as soon as the initramfs says it is growing the data file system."""
    m.start(write_bytes_per_s=64 << 10)
    try:
        wait_for(lambda: m.console.exists() and "growing the data file system" in m.console.read_text(errors="replace"),
                 timeout=600, interval=0.05, message="the initramfs to grow the data file system")
    except TimeoutError:
        raise AssertionError(f"the initramfs never grew the data file system; console:\n{m.tail()}")
    finally:
        m.power_cut()
    return _card_data(m.disk)


def _partition_bytes_equal(a: Path, b: Path, part: dict, sector: int = 512) -> bool:
    start, size = part["start"] * sector, part["size"] * sector
    with open(a, "rb") as fa, open(b, "rb") as fb:
        fa.seek(start)
        fb.seek(start)
        while size:
            n = min(size, 16 << 20)
            if fa.read(n) != fb.read(n):
                return False
            size -= n
    return True


def _form_post(opener, url: str, fields: dict) -> tuple[int, str]:
    """A form posted as the clinic PC's browser posts it: from the page itself, so with its Referer
    (the web UI refuses an HTTPS post that does not say it came from the box's own pages)."""
    import urllib.error
    import urllib.parse
    import urllib.request
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), headers={"Referer": url})
    try:
        with opener.open(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def vm(image, tmp_path_factory):
    from test_firstboot_provisioning import BOOT_FILE, Hub

    machine = os.uname().machine
    if not shutil.which(QEMU[machine][0]):
        pytest.fail(f"{QEMU[machine][0]} is missing: ./run test installs it (qemu-system-x86 / qemu-system-arm)")
    base = tmp_path_factory.mktemp("vm")
    disk = base / "sd-card.img"
    sh("cp", "--sparse=always", str(image.path.parent / "as-flashed.img"), str(disk), timeout=300)
    os.truncate(disk, disk.stat().st_size + (1 << 30))     # the card is 1 GiB bigger than the image
    marker = base / MARKER
    marker.write_text(MARKER_TEXT)
    data_start = json.loads(sh("sfdisk", "--json", str(disk)).stdout)["partitiontable"]["partitions"][2]["start"] * 512
    sh("debugfs", "-w", "-R", f"write {marker} {MARKER}", f"{disk}?offset={data_start}")
    hub = Hub(base, names=HUB_IN_VM.split(":")[0]).start()   # the hub's certificate names its address in the VM
    code = hub.new_code("image-vm")
    provisioning = base / "clinic-edge.toml"   # what county IT writes onto the card before posting it
    provisioning.write_text(BOOT_FILE.format(url=f"https://{HUB_IN_VM}", code=code,
                                            hub_key=hub.fingerprint).split("[wifi]")[0])
    machine_ = VM(disk, base, hub.port)
    import ssl

    machine_.trusted = ssl.create_default_context(cafile=str(hub.ca_file))
    sh("mcopy", "-i", machine_.fat, str(provisioning), "::/clinic-edge.toml")
    try:
        cut = _cut_while_growing(machine_)   # the very first power-on is cut short in the initramfs
    except BaseException:
        hub.stop()
        raise
    machine_.start()
    yield {"vm": machine_, "hub": hub, "flashed": image.path.parent / "as-flashed.img", "table": image.table,
           "host_key": None, "cut": cut}
    machine_.power_cut()
    hub.stop()


def _hub_row(hub) -> dict | None:
    rows = json.loads(clinic_edge(hub.env, "hub", "node", "list", "--json").stdout)
    return next((r for r in rows if r["name"] == "image-vm"), None)


def _console_setup_code(m) -> str | None:
    """The admin's one-time setup code as county IT reads it on the box's console (serial here)."""
    found = re.findall(r"setup code for the admin account: (\S+)", m.console.read_text(errors="replace"))
    return found[-1] if found else None


def test_vm_a_power_cut_while_the_data_partition_grows_is_finished_at_the_next_boot(vm, keys):
    """The card is 1 GiB bigger than the image. Its first power-on (a slow card) was cut as soon as the
    initramfs said it was growing the data file system: the partition table already reached the end
    of the card, the file system was caught inside resize2fs. At the next power-on the initramfs
    checks the file system and finishes the grow before systemd starts: /data is the data partition,
    its file system reaches the end of the card, what was on it before is intact, the box is healthy,
    and the kernel log (journalctl -b) says what was done."""
    cut, m = vm["cut"], vm["vm"]
    assert cut["card"] - cut["end"] < 1 << 20, f"the partition was not grown before the file system: {cut}"
    assert cut["end"] - cut["start"] - cut["fs"] > FS_SLACK, f"the plug was pulled after resize2fs had finished: {cut}"
    # made with mke2fs's defaults (image/mke2fs.conf), not the "small" type (1 KiB blocks, an inode per
    # 4 KiB): 4 KiB blocks, an inode per 16 KiB of the built size (22 KiB once grown: the inodes of a
    # block group are rounded to what fills whole inode-table blocks)
    assert cut["block"] == 4096 and cut["bytes_per_inode"] >= 16384, cut
    m.wait_healthy()
    wait_for(m.ssh_host_key, timeout=120, interval=3, message="sshd on the box")
    data = _booted_data(m, keys / "county")
    assert data["mount"] == ["/dev/vda3", "ext4"], data["mount"]
    assert data["card"] == cut["card"] and data["end"] == cut["end"], (data, cut)
    assert data["card"] - data["start"] - data["fs"] < FS_SLACK, f"/data stops short of the card's end: {data}"
    assert data["marker"] == MARKER_TEXT
    log = "\n".join(data["log"])
    assert "checking the data file system" in log and "growing the data file system" in log, log
    assert f"the data file system on /dev/vda3 is now {data['fs'] >> 20} MiB" in log, log
    assert "growing partition" not in log, log   # the table had been written before the cut


def test_vm_the_flashed_card_boots_enrolls_and_shows_the_setup_code_on_the_console(vm):
    m, hub = vm["vm"], vm["hub"]
    health = m.wait_healthy()
    assert health["store"] == "ok" and health["version"] == VERSION
    try:
        vm["setup_code"] = wait_for(lambda: _console_setup_code(m), timeout=180, interval=2,
                                    message="the setup code on the console")
    except TimeoutError:
        raise AssertionError(f"/setup: {m.get('/setup')[1][-2000:]}\nconsole:\n{m.tail()}")
    status, page = m.get("/setup")
    assert status == 200 and 'name="code"' in page and vm["setup_code"] not in page, page[-2000:]
    try:
        row = wait_for(lambda: (lambda r: r if r and (r.get("health") or {}).get("version") == VERSION else None)(
            _hub_row(hub)), timeout=180, interval=3, message="the box's health on the hub's node list")
    except TimeoutError:
        raise AssertionError(f"hub rows: {_hub_row(hub)}\nconsole:\n{m.tail()}")
    assert row["health"]["disk_free_mb"] > 0
    console = m.console.read_text(errors="replace")
    assert "Timed out waiting for device" not in console, "the boot waits for hardware the box does not have"
    vm["host_key"] = wait_for(m.ssh_host_key, timeout=60, interval=3, message="sshd with the box's own host key")


def test_vm_county_it_sets_the_admin_password_then_the_power_fails(vm):
    """The admin's own password is set through /setup; then the plug is pulled. The card's root
    partition is byte for byte as flashed (the overlay kept every write in RAM), the secrets file is
    gone from the boot partition, and after power returns the box comes back by itself: healthy,
    the same enrolled node, the admin's password still works and first boot does not run again."""
    import http.cookiejar
    import urllib.request

    m, hub = vm["vm"], vm["hub"]
    opener = m.opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, page = m.get("/setup", opener)
    assert status == 200
    setup_code = vm.get("setup_code") or _console_setup_code(m)
    assert setup_code, m.tail()
    status, body = _form_post(opener, f"https://127.0.0.1:{m.web_port}/setup",
                              {"csrf_token": _csrf(page), "code": setup_code,
                               "password": "shiqiao-admin-2026", "password2": "shiqiao-admin-2026"})
    assert status == 200 and 'name="username"' in body, body[-2000:]   # redirected to the login page
    assert "flash-error" not in body, body[-2000:]

    m.power_cut()
    assert _partition_bytes_equal(m.disk, vm["flashed"], vm["table"]["partitions"][1]), \
        "the running system wrote to the card's root partition"
    assert not _partition_bytes_equal(m.disk, vm["flashed"], vm["table"]["partitions"][2]), \
        "nothing reached the data partition"
    assert "clinic-edge.toml" not in m.boot_listing(), "the enrollment secrets are still on the boot partition"
    card = _card_data(m.disk)
    assert card["card"] - card["start"] - card["fs"] < FS_SLACK, card

    m.start()
    health = m.wait_healthy()
    assert health["store"] == "ok"
    opener = m.opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, page = m.get("/login", opener)
    status, body = _form_post(opener, f"https://127.0.0.1:{m.web_port}/login",
                              {"csrf_token": _csrf(page), "username": "admin", "password": "shiqiao-admin-2026"})
    assert status == 200 and 'name="username"' not in body, body[-2000:]
    assert 'name="code"' not in m.get("/setup")[1]
    assert wait_for(m.ssh_host_key, timeout=60, interval=3, message="sshd after the power cut") == vm["host_key"], \
        "the box's SSH host key changed across the power cut"
    rows = json.loads(clinic_edge(hub.env, "hub", "node", "list", "--json").stdout)
    assert [r["name"] for r in rows] == ["image-vm"], rows


@LONG_VM
def test_vm_a_release_published_on_the_hub_installs_itself_on_the_box(vm, keys, tmp_path):
    """County IT publishes a signed release on the hub and asks the box to sync (what the web UI's
    "sync now" does). The box downloads the bundle, its root update service installs it into a new
    virtualenv on the grown data partition, restarts the services on it and waits for them to be
    healthy: /healthz reports the new version, the county sees it and the outcome, the bundle is
    filed under updates/done, and the clinic's data (the admin's password) is intact."""
    import http.cookiejar
    import urllib.request

    from appliance_release import project_wheel

    m, hub, key = vm["vm"], vm["hub"], keys / "county"
    wheels = project_wheel("0.2.0", tmp_path)
    bundle = tmp_path / "clinic-edge-0.2.0.bundle"
    sh(sys.executable, "-m", "edge", "update", "build-bundle", "--key", str(keys / "release.key"),
       "--out", str(bundle), str(wheels))
    clinic_edge(hub.env, "hub", "bundle", "publish", str(bundle))
    m.wait_healthy()
    wait_for(m.ssh_host_key, timeout=120, interval=3, message="sshd on the box")
    m.ssh(key, "sudo -u clinic-edge touch /var/lib/clinic-edge/run/sync-now")
    try:
        wait_for(lambda: (m.healthz() or {}).get("version") == "0.2.0", timeout=900, interval=5,
                 message="the box to run the release from the hub")
    except TimeoutError:
        raise AssertionError(f"/healthz: {m.healthz()}\nconsole:\n{m.tail()}")
    m.wait_healthy()
    row = wait_for(lambda: (lambda r: r if ((r.get("health") or {}).get("last_update") or {}).get("to") == "0.2.0"
                            else None)(_hub_row(hub) or {}),
                   timeout=180, interval=3, message="the hub to see the outcome of the update")
    assert row["health"]["last_update"]["result"] == "ok", row["health"]
    assert m.ssh(key, "sudo ls /var/lib/clinic-edge/updates/done /var/lib/clinic-edge/updates/ready").split() \
        == ["/var/lib/clinic-edge/updates/done:", "0.2.0.bundle", "/var/lib/clinic-edge/updates/ready:"]
    opener = m.opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, page = m.get("/login", opener)
    status, body = _form_post(opener, f"https://127.0.0.1:{m.web_port}/login",
                              {"csrf_token": _csrf(page), "username": "admin", "password": "shiqiao-admin-2026"})
    assert status == 200 and 'name="username"' not in body, body[-2000:]


@LONG_VM
def test_vm_boot_after_boot_the_data_partition_stays_grown_and_mounted(vm, keys):
    """Growing the data partition under a running systemd raced udev: 1 boot in 5 came up without
    /data and without services. Here the grown card is shut down and powered on twice more (with the
    boots above, four full boots): every time the box is healthy, /data is the data partition at the
    same size, its contents are there, and the initramfs had nothing to grow or check."""
    m, key = vm["vm"], keys / "county"
    m.wait_healthy()
    wait_for(m.ssh_host_key, timeout=120, interval=3, message="sshd on the box")
    first = _booted_data(m, key)
    for _ in range(2):
        m.ssh(key, "sudo systemctl poweroff", check=False)   # the connection drops as the box goes down
        m.proc.wait(300)
        m.start()
        m.wait_healthy()
        wait_for(m.ssh_host_key, timeout=120, interval=3, message="sshd on the box")
        data = _booted_data(m, key)
        assert (data["mount"], data["end"], data["fs"]) == (first["mount"], first["end"], first["fs"]), (data, first)
        assert data["marker"] == MARKER_TEXT
        assert data["log"] == [], f"boot {m.boots}: the initramfs grew or checked again: {data['log']}"
    # the last shutdown is a clean one: the data file system as it is on the card is clean, and grown
    # with the same ratios (4 KiB blocks, the inodes per block group it was made with)
    m.ssh(key, "sudo systemctl poweroff", check=False)
    m.proc.wait(300)
    fsck = _fsck_card_data(m.disk)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    card = _card_data(m.disk)
    assert (card["state"], card["block"], card["inodes_per_group"]) == ("clean", 4096, vm["cut"]["inodes_per_group"]), card
