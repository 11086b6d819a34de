"""`clinic-edge update apply`: real wheels of this checkout under new version numbers, real
virtualenvs under a temporary prefix, a real `clinic-edge serve` restarted from `current`, its real
/healthz. Never touches the machine's /opt or its services (systemctl is replaced by a script)."""
from __future__ import annotations

import json
import os
import subprocess
import shutil
import signal
import sqlite3
import sys
import tarfile
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance_release import SERVICE_SCRIPT, project_wheel, share_virtualenv
from conftest import clinic_edge, free_port
from sync_fixtures import hub  # noqa: F401
from edge.appliance import bundle
from edge.appliance.errors import BundleRefused
from edge.core import config as config_mod, devices
from edge.core.ingest import ingest
from edge.core.node import Node
from edge.core.reading import Reading

pytestmark = pytest.mark.slow


# --- the bundle format alone (fast) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def small_bundle(tmp_path, key):
    wheels = tmp_path / "w"
    wheels.mkdir()
    (wheels / "clinic_edge-0.9.0-py3-none-any.whl").write_bytes(b"PK not really a wheel")
    (wheels / "dep-1.0-py3-none-any.whl").write_bytes(b"PK dependency")
    out = tmp_path / "b.bundle"
    bundle.build(wheels, key, out)
    return out


def _rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a bundle member by member, letting `change(name, data)` alter or drop members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = change(m.name, tin.extractfile(m).read())
            if data is None:
                continue
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            import io
            tout.addfile(info, io.BytesIO(data))
    return dst


def test_a_signed_bundle_verifies_and_unpacks(small_bundle, key, tmp_path):
    m = bundle.verify(small_bundle, key.public_key(), dest=tmp_path / "out")
    assert m.version == "0.9.0"
    assert (tmp_path / "out" / "dep-1.0-py3-none-any.whl").read_bytes() == b"PK dependency"


@pytest.mark.parametrize("change, reason", [
    (lambda n, d: d + b"x" if n.startswith("wheels/dep") else d, "changed after signing"),
    (lambda n, d: d.replace(b"0.9.0", b"9.9.0") if n == "manifest.json" else d, "signature does not match"),
    (lambda n, d: None if n == "manifest.sig" else d, "not signed"),
    (lambda n, d: None if n.startswith("wheels/dep") else d, "missing"),
])
def test_a_changed_bundle_is_refused_saying_why(small_bundle, key, tmp_path, change, reason):
    bad = _rewrite(small_bundle, tmp_path / "bad.bundle", change)
    with pytest.raises(BundleRefused, match=reason):
        bundle.verify(bad, key.public_key(), dest=tmp_path / "out")


def test_a_bundle_signed_by_another_key_is_refused(small_bundle):
    with pytest.raises(BundleRefused, match="another key"):
        bundle.verify(small_bundle, Ed25519PrivateKey.generate().public_key())


# --- bundles in a crypto suite (docs/crypto-suites.md) ----------------------------------------------

@pytest.fixture(scope="module")
def sm_keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("sm-release")
    public = bundle.make_release_key(d / "release.key", d / "release.pub", "sm")
    assert public.startswith("-----BEGIN PUBLIC KEY-----") and (d / "release.key").stat().st_mode & 0o077 == 0
    return d


def _wheels(tmp_path) -> Path:
    wheels = tmp_path / "w"
    wheels.mkdir(exist_ok=True)
    (wheels / "clinic_edge-0.9.0-py3-none-any.whl").write_bytes(b"PK not really a wheel")
    return wheels


def _signed_as(tmp_path, manifest: dict, signer) -> Path:
    """A bundle whose manifest.json is `manifest`, signed by `signer` (whatever the manifest says)."""
    raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
    out = tmp_path / "hand.bundle"
    with tarfile.open(out, "w") as tar:
        bundle._add(tar, "manifest.json", raw)
        bundle._add(tar, "manifest.sig", signer.sign(raw))
        tar.add(_wheels(tmp_path) / "clinic_edge-0.9.0-py3-none-any.whl",
                arcname="wheels/clinic_edge-0.9.0-py3-none-any.whl")
    return out


def _manifest(**extra) -> dict:
    return {"format": 1, "name": "clinic-edge", "version": "0.9.0", "created": "2026-12-03T00:00:00+00:00",
            "wheels": [{"file": "clinic_edge-0.9.0-py3-none-any.whl",
                        "sha256": bundle.sha256_bytes(b"PK not really a wheel")}], **extra}


def test_an_sm2_signed_bundle_records_its_suite_and_verifies_with_the_sm_release_key(sm_keys, tmp_path):
    out = tmp_path / "sm.bundle"
    bundle.build(_wheels(tmp_path), bundle.load_private_key(sm_keys / "release.key"), out)
    public = bundle.load_public_key(sm_keys / "release.pub")
    assert public.suite == "sm"
    m = bundle.verify(out, public, dest=tmp_path / "out")
    assert (m.version, m.suite, json.loads(m.raw)["suite"]) == ("0.9.0", "sm", "sm")
    assert (tmp_path / "out" / "clinic_edge-0.9.0-py3-none-any.whl").read_bytes() == b"PK not really a wheel"
    from edge.core.suites import suite
    with tarfile.open(out) as t:       # the signature is SM2 over the manifest's bytes
        sig = t.extractfile("manifest.sig").read()
    assert suite("sm").public_key((sm_keys / "release.pub").read_bytes()).verify(sig, m.raw)
    # under an SM2 signature every wheel is pinned by SM3 as well (SHA-256 stays for pip)
    assert m.sm3 == {"clinic_edge-0.9.0-py3-none-any.whl": suite("sm").digest(b"PK not really a wheel").hex()}


def test_an_sm_bundle_that_pins_its_wheels_by_sha256_alone_is_refused(sm_keys, tmp_path):
    signer = bundle.load_private_key(sm_keys / "release.key")
    only_sha = _signed_as(tmp_path, _manifest(suite="sm"), signer)
    with pytest.raises(BundleRefused, match="an sm bundle pins every wheel by sha256 and sm3"):
        bundle.verify(only_sha, bundle.load_public_key(sm_keys / "release.pub"))


def test_an_ed25519_bundle_from_before_suites_still_verifies(key, tmp_path):
    old = _signed_as(tmp_path, _manifest(), key)           # no "suite" in its manifest
    pub = tmp_path / "release.pub"
    pub.write_text(bundle.public_key_text(key.public_key()) + "\n")
    m = bundle.verify(old, bundle.load_public_key(pub))
    assert (m.version, m.suite) == ("0.9.0", "ed25519")


def test_a_manifest_that_says_sm_but_is_signed_otherwise_is_refused_saying_why(sm_keys, key, tmp_path):
    sm_public = bundle.load_public_key(sm_keys / "release.pub")
    lying = _signed_as(tmp_path, _manifest(suite="sm"), key)      # says sm, signed Ed25519
    with pytest.raises(BundleRefused, match=r"signature does not match the release key \(sm\)"):
        bundle.verify(lying, sm_public)
    with pytest.raises(BundleRefused, match="says it is signed in the sm suite, but this node's release key is "
                                            "ed25519"):
        bundle.verify(lying, key.public_key())
    signer = bundle.load_private_key(sm_keys / "release.key")
    good = _signed_as(tmp_path, _manifest(suite="sm"), signer)
    bad = _rewrite(good, tmp_path / "bad.bundle",
                   lambda n, d: d.replace(b"0.9.0", b"9.9.0") if n == "manifest.json" else d)
    with pytest.raises(BundleRefused, match="signature does not match"):
        bundle.verify(bad, sm_public)
    relabelled = _signed_as(tmp_path, _manifest(suite="ed25519"), signer)   # SM2 signature, says ed25519
    with pytest.raises(BundleRefused, match="says it is signed in the ed25519 suite, but this node's release "
                                            "key is sm"):
        bundle.verify(relabelled, sm_public)


def test_versions_compare_as_numbers():
    assert bundle.version_key("0.10.0") > bundle.version_key("0.9.1") > bundle.version_key("0.9.1rc1")
    assert bundle.version_key("1.0.0") == bundle.version_key("1.0.0")


# --- the whole update on a temporary prefix (real virtualenvs) -------------------------------------

class Appliance:
    def __init__(self, base: Path, build: Path):
        self.base = base
        self.build = build
        self.prefix = base / "opt"
        self.data = base / "data"
        self.keys = base / "keys"
        self.port = free_port()
        self.pidfile = base / "web.pid"
        svc = base / "service.py"
        svc.write_text(SERVICE_SCRIPT)
        manage = f"{sys.executable} {svc} {self.prefix} {self.pidfile} 127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
        self.env.update({
            "CLINIC_EDGE_DATA": str(self.data),
            "CLINIC_EDGE_UPDATE_PREFIX": str(self.prefix),
            "CLINIC_EDGE_UPDATE_RELEASE_KEY": str(self.keys / "release.pub"),
            "CLINIC_EDGE_UPDATE_PYTHON": sys._base_executable,
            "CLINIC_EDGE_UPDATE_HEALTH_URL": f"http://127.0.0.1:{self.port}/healthz",
            "CLINIC_EDGE_UPDATE_HEALTH_TIMEOUT": "10",
            "CLINIC_EDGE_UPDATE_RESTART_COMMAND": f"{manage} restart",
            "CLINIC_EDGE_UPDATE_STOP_COMMAND": f"{manage} stop",
            # plain HTTP on loopback even once enrolled (the image gets that from [web] redirect_listen's
            # /healthz passthrough); else the hub test's enrollment makes the next release look dead
            "CLINIC_EDGE_WEB_TLS": "false",
        })

    def bundle(self, version: str, broken: bool = False) -> Path:
        wheels = project_wheel(version, self.build, broken=broken)
        out = self.base / f"clinic-edge-{version}{'-broken' if broken else ''}.bundle"
        clinic_edge(self.env, "update", "build-bundle", "--key", str(self.keys / "release.key"),
                    "--out", str(out), str(wheels), timeout=120)
        return out

    def apply(self, bundle_path: Path):
        return clinic_edge(self.env, "update", "apply", str(bundle_path), check=False, timeout=300)

    def current(self) -> str:
        return os.readlink(self.prefix / "current")

    def healthz(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
            return json.loads(r.read())

    def readings(self) -> list[str]:
        conn = sqlite3.connect(self.data / "clinic-edge.db")
        try:
            return [r[0] for r in conn.execute("SELECT id FROM readings ORDER BY id")]
        finally:
            conn.close()

    def tables(self) -> set[str]:
        conn = sqlite3.connect(self.data / "clinic-edge.db")
        try:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()

    def listing(self) -> list[str]:
        return sorted(p.name for p in self.prefix.iterdir())

    def stop(self) -> None:
        try:
            os.kill(int(self.pidfile.read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def _store_readings(env: dict, n: int) -> None:
    node = Node(config_mod.load(env=env))
    now = datetime.now(timezone.utc)
    readings = [Reading(device_id="bp-1", code="8480-6", value=120 + i, unit="mm[Hg]", transport="test",
                        device_time=now, raw=f"update-test-{i}", source_key=f"update-test-{i}")
                for i in range(n)]
    if not devices.get(node.store, "bp-1"):
        devices.add(node.store, "bp-1", kind="bp", transport="mqtt", now=now)
    outcomes = ingest(node.store, readings, clock=node.clock)
    assert all(o.status == "valid" for o in outcomes), outcomes
    node.close()


@pytest.fixture(scope="session")
def release_build(tmp_path_factory) -> Path:
    """Where this checkout's wheel is built, once; every release is that wheel relabelled."""
    return tmp_path_factory.mktemp("release-build")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory, release_build):
    a = Appliance(tmp_path_factory.mktemp("appliance"), release_build)
    clinic_edge(a.env, "update", "keygen", "--out", str(a.keys))
    clinic_edge(a.env, "init")
    a.first = a.bundle("0.1.0")
    out = a.apply(a.first)         # the first install makes its virtualenv from nothing, as on a box
    assert out.returncode == 0, out.stderr
    # later updates start from a copy of that virtualenv: pip installs only the new clinic-edge
    # (the dependencies are the same wheels; a fresh one each time cost about 10 s per update)
    a.env["CLINIC_EDGE_UPDATE_PYTHON"] = str(share_virtualenv(a.prefix / "0.1.0", a.base))
    yield a
    a.stop()


def test_first_install_sets_up_a_versioned_virtualenv_and_current(appliance):
    assert appliance.current() == "0.1.0"
    assert (appliance.prefix / "0.1.0" / "bin" / "clinic-edge").exists()
    assert appliance.healthz()["version"] == "0.1.0"
    assert (appliance.keys / "release.key").stat().st_mode & 0o077 == 0


def test_tampered_unsigned_foreign_and_older_bundles_change_nothing(appliance, tmp_path):
    newer = appliance.bundle("0.1.5")
    before = appliance.listing()
    cases = {
        "tampered": _rewrite(newer, tmp_path / "t.bundle",
                             lambda n, d: d[:-10] + b"0123456789" if n.startswith("wheels/clinic_edge") else d),
        "unsigned": _rewrite(newer, tmp_path / "u.bundle", lambda n, d: None if n == "manifest.sig" else d),
        "older or same": appliance.first,
    }
    foreign_key = tmp_path / "foreign"
    clinic_edge(appliance.env, "update", "keygen", "--out", str(foreign_key))
    foreign = tmp_path / "f.bundle"
    clinic_edge(appliance.env, "update", "build-bundle", "--key", str(foreign_key / "release.key"),
                "--out", str(foreign), str(appliance.build / "wheels-0.1.5"))
    cases["signed by another key"] = foreign
    for name, path in cases.items():
        out = appliance.apply(path)
        assert out.returncode == 3, (name, out.stderr)
        assert "refused" in out.stderr, (name, out.stderr)
        assert appliance.listing() == before and appliance.current() == "0.1.0", name
    assert appliance.healthz()["version"] == "0.1.0"


def test_a_good_bundle_upgrades_and_keeps_the_data(appliance):
    _store_readings(appliance.env, 5)
    before = appliance.readings()
    out = appliance.apply(appliance.bundle("0.2.0"))
    assert out.returncode == 0, out.stderr
    assert appliance.current() == "0.2.0"
    assert appliance.healthz()["version"] == "0.2.0"
    assert appliance.readings() == before and len(before) == 5
    assert (appliance.data / "backups" / "pre-update-0.1.0-to-0.2.0.db").exists()
    assert (appliance.prefix / "0.1.0").is_dir(), "the previous version stays for a rollback"
    # root installs it under umask 077; the services' own user must still read and run it
    assert (appliance.prefix / "0.2.0").stat().st_mode & 0o777 == 0o755
    assert (appliance.prefix / "0.2.0" / "bin" / "clinic-edge").stat().st_mode & 0o055 == 0o055


def test_the_running_release_offered_again_is_refused_and_the_previous_one_kept(appliance):
    out = appliance.apply(appliance.bundle("0.2.0"))
    assert out.returncode == 3 and "not newer than the running 0.2.0" in out.stderr, out.stderr
    assert (appliance.prefix / "0.1.0").is_dir(), "a refused bundle pruned the release a rollback needs"
    assert appliance.current() == "0.2.0"


def test_a_release_that_fails_its_health_check_is_rolled_back_with_the_data_restored(appliance):
    before = appliance.readings()
    out = appliance.apply(appliance.bundle("0.3.0", broken=True))
    assert out.returncode == 4, out.stdout + out.stderr
    assert "rolled back to 0.2.0" in out.stderr
    assert appliance.current() == "0.2.0"
    assert appliance.healthz()["version"] == "0.2.0" and appliance.healthz()["ok"]
    assert "broken_release_marker" not in appliance.tables(), "the broken release's migration was not undone"
    assert appliance.readings() == before
    status = json.loads((appliance.data / "run" / "update.json").read_text())
    assert status["result"] == "rolled back" and status["to"] == "0.3.0" and status["old_version_healthy"]
    reason = status["reason"]            # why (issue 18): the check, its output, the time it waited
    assert reason["check"] == f"GET http://127.0.0.1:{appliance.port}/healthz" and reason["failed"] == "not ok"
    assert reason["output"].startswith("HTTP 503: ") and '"ok":false' in reason["output"].replace(" ", "")
    assert reason["waited_s"] >= 10
    assert "did not report ok within" in out.stderr


@pytest.fixture
def hub_database(tmp_path) -> str:   # SQLite only (sync_fixtures.hub): the hub's storage is not tested here
    return f"sqlite:///{tmp_path / 'hub.db'}"


def test_the_reason_of_a_real_rollback_is_in_doctor_and_on_the_hub_dashboard(appliance, hub):
    from sync_fixtures import enroll, sync_env

    if json.loads((appliance.data / "run" / "update.json").read_text())["result"] != "rolled back":
        assert appliance.apply(appliance.bundle("0.3.0", broken=True)).returncode == 4
    found = [f for f in json.loads(clinic_edge(appliance.env, "doctor", "--json", check=False).stdout)
             if f["check"] == "update"]
    assert found and "-> 0.3.0 was rolled back" in found[0]["detail"] and "HTTP 503" in found[0]["detail"]
    enroll(appliance.env, hub)
    assert clinic_edge(sync_env(appliance.env), "sync", "--once", check=False).returncode == 0
    status, page = hub.browser("it", "viewer").get("/")      # county IT, logged in
    assert status == 200
    updates = page[page.index('<table class="updates">'):]
    assert "已回滚 rolled back" in updates and "→ 0.3.0" in updates and "not ok after" in updates
    assert "HTTP 503" in updates


def test_a_release_whose_services_cannot_start_is_rolled_back_saying_so(appliance):
    manage = appliance.env["CLINIC_EDGE_UPDATE_RESTART_COMMAND"]
    failing = (f"sh -c '[ \"$(readlink {appliance.prefix}/current)\" = 0.3.5 ] && "
               f"{{ echo unit failed >&2; exit 7; }}; exec {manage}'")
    env = {**appliance.env, "CLINIC_EDGE_UPDATE_RESTART_COMMAND": failing}
    out = clinic_edge(env, "update", "apply", str(appliance.bundle("0.3.5")), check=False, timeout=300)
    assert out.returncode == 4 and "the services did not start on 0.3.5" in out.stderr, out.stdout + out.stderr
    assert appliance.current() == "0.2.0" and appliance.healthz()["version"] == "0.2.0"
    status = json.loads((appliance.data / "run" / "update.json").read_text())
    assert status["result"] == "rolled back" and status["to"] == "0.3.5" and status["old_version_healthy"]
    assert status["reason"]["failed"] == "restart failed" and "exit status 7" in status["reason"]["output"]


def test_apply_pending_installs_the_bundle_sync_fetched_and_files_it_under_done(appliance):
    updates = appliance.data / "updates"
    ready = updates / "ready"
    ready.mkdir(parents=True, exist_ok=True)
    shutil.copy(appliance.bundle("0.4.0"), ready / "0.4.0.bundle")    # where sync puts a fetched bundle
    out = clinic_edge(appliance.env, "update", "apply-pending", check=False, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "-> 0.4.0" in out.stdout and "done" in out.stdout
    assert (updates / "done" / "0.4.0.bundle").exists() and not list(ready.iterdir())
    assert not (updates / "failed" / "0.4.0.bundle").exists()
    assert appliance.current() == "0.4.0" and appliance.healthz()["version"] == "0.4.0"
    status = json.loads((appliance.data / "run" / "update.json").read_text())
    assert status["result"] == "ok" and status["to"] == "0.4.0"
    assert (appliance.data / "run" / "sync-now").exists(), "the sync daemon was not asked to tell the county"
    doctor = json.loads(clinic_edge(appliance.env, "doctor", "--json", check=False).stdout)
    assert not [f for f in doctor if f["check"] == "update"], "a successful update leaves no warning"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_an_update_that_does_not_fit_on_the_data_partition_is_refused_before_anything_changes(appliance, tmp_path):
    small = tmp_path / "small-opt"          # a real 64 MB file system standing in for a full card
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    try:
        env = {**appliance.env, "CLINIC_EDGE_UPDATE_PREFIX": str(small)}
        out = clinic_edge(env, "update", "apply", str(appliance.first), check=False, timeout=120)
        assert out.returncode == 3 and "not enough space on the data partition" in out.stderr, out.stderr
        assert list(small.iterdir()) == [], "something was written although the update was refused"
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_county_on_sm_signs_its_release_with_sm2_and_the_node_installs_it(appliance, tmp_path):
    """The release key of an sm county is SM2 (`update keygen --suite sm`); its bundle installs."""
    keys = tmp_path / "sm-release"
    clinic_edge(appliance.env, "update", "keygen", "--suite", "sm", "--out", str(keys))
    wheels = project_wheel("0.5.0", appliance.build)
    out = tmp_path / "clinic-edge-0.5.0-sm.bundle"
    clinic_edge(appliance.env, "update", "build-bundle", "--key", str(keys / "release.key"), "--out", str(out),
                str(wheels), timeout=120)
    env = {**appliance.env, "CLINIC_EDGE_UPDATE_RELEASE_KEY": str(keys / "release.pub")}
    ed25519_node = appliance.apply(out)          # a node still holding the ed25519 release key
    assert ed25519_node.returncode == 3 and "release key is ed25519: refused" in ed25519_node.stderr
    r = clinic_edge(env, "update", "apply", str(out), check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    assert appliance.current() == "0.5.0" and appliance.healthz()["version"] == "0.5.0"
