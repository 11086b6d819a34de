"""The broker's journal plugin across updates (docs/operations.md, "The broker's journal plugin in an
update"). The box has no compiler: the image brings the plugin in its first release's virtualenv.
Before, a later release only borrowed it from that release, so the second update pruned it and
left the box with a broker that cannot start (and a rollback target that cannot either); and a
release that changed the plugin's source could only be installed, fail and be rolled back.

`update.apply` runs for real here (signature, hashes, prune, switch, health wait) with the
virtualenv creation and the service restart passed in, and a real /healthz over HTTP."""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from conftest import healthz_server
from edge.appliance import bundle, journal, update
from edge.appliance.errors import BundleRefused
from edge.core import config as config_mod
from edge.core import release
from edge.core.node import Node

ROOT = Path(__file__).resolve().parents[1]
SOURCE = (ROOT / journal.SOURCE).read_bytes()
CHANGED = SOURCE + b"\n/* a later release changed the plugin */\n"


@pytest.fixture(scope="module")
def built_plugin() -> Path:
    """The real plugin, compiled from this checkout's source (once, into the user's cache)."""
    from device_drivers.mqtt import journal_plugin
    return journal_plugin.plugin_path()


@pytest.fixture
def healthz():
    with healthz_server(200, {"ok": True}) as url:
        yield url


class Box:
    """An install prefix as the image leaves it: 0.1.0 with the plugin in its virtualenv."""

    def __init__(self, base: Path, health_url: str, plugin: Path, machine_plugin: bool = True):
        self.base, self.prefix, self.keys = base, base / "opt", base / "keys"
        bundle.make_release_key(self.keys / "release.key", self.keys / "release.pub")
        self.env = {"CLINIC_EDGE_DATA": str(base / "data"), "CLINIC_EDGE_UPDATE_PREFIX": str(self.prefix),
                    "CLINIC_EDGE_UPDATE_RELEASE_KEY": str(self.keys / "release.pub"),
                    "CLINIC_EDGE_UPDATE_HEALTH_URL": health_url, "CLINIC_EDGE_UPDATE_HEALTH_TIMEOUT": "5",
                    "CLINIC_EDGE_UPDATE_RESTART_COMMAND": "restart", "CLINIC_EDGE_UPDATE_STOP_COMMAND": "stop"}
        first = self.prefix / "0.1.0"
        (first / "bin").mkdir(parents=True)
        if machine_plugin:
            journal.place(journal.Plugin(plugin.name, plugin.read_bytes(), ""), first)
        os.symlink("0.1.0", self.prefix / "current")
        self.commands: list[list[str]] = []

    def run(self, cmd: list[str]) -> None:
        """Stands in for `python -m venv`, pip and systemctl (the bundle's wheels are not real)."""
        self.commands.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:
            (Path(cmd[3]) / "bin").mkdir(parents=True)

    def bundle(self, version: str, source: bytes = SOURCE, plugin: Path | None = None) -> Path:
        wheels = self.base / f"wheels-{version}"
        wheels.mkdir()
        with zipfile.ZipFile(wheels / f"clinic_edge-{version}-py3-none-any.whl", "w") as z:
            z.writestr(journal.SOURCE, source)
        out = self.base / f"clinic-edge-{version}.bundle"
        bundle.build(wheels, bundle.load_private_key(self.keys / "release.key"), out, plugin=plugin)
        return out

    def apply(self, path: Path) -> update.Outcome:
        node = Node(config_mod.load(env=self.env))
        try:
            return update.apply(node, path, run=self.run, sleep=lambda s: None)
        finally:
            node.close()

    def plugins(self) -> dict[str, list[str]]:
        return {v.name: sorted(p.name for p in (v / journal.LIB).glob("*.so"))
                for v in sorted(self.prefix.iterdir()) if v.is_dir() and not v.is_symlink()}


def test_two_updates_with_the_same_plugin_source_keep_the_plugin_in_every_release_that_may_run(
        tmp_path, healthz, built_plugin):
    box = Box(tmp_path, healthz, built_plugin)
    box.apply(box.bundle("0.2.0"))
    box.apply(box.bundle("0.3.0"))       # prunes 0.1.0, the release the image brought the plugin in
    name = release.journal_plugin_name(SOURCE)
    assert box.plugins() == {"0.2.0": [name], "0.3.0": [name]}    # the running one and the rollback target
    placed = box.prefix / "0.3.0" / journal.LIB / name
    assert placed.read_bytes() == built_plugin.read_bytes() and placed.stat().st_mode & 0o755 == 0o755
    assert (placed.parent.stat().st_mode & 0o777) == 0o755


def test_a_release_that_changes_the_plugin_source_and_does_not_carry_it_is_refused_before_anything_changes(
        tmp_path, healthz, built_plugin):
    box = Box(tmp_path, healthz, built_plugin)
    with pytest.raises(BundleRefused) as refused:
        box.apply(box.bundle("0.2.0", source=CHANGED))
    assert f"needs the broker's journal plugin {release.journal_plugin_name(CHANGED)}" in str(refused.value)
    assert "build-bundle --plugin FILE" in str(refused.value) and "nothing changed" in str(refused.value)
    assert os.readlink(box.prefix / "current") == "0.1.0" and box.plugins() == {"0.1.0": [built_plugin.name]}
    assert not any(c[1:3] == ["-m", "venv"] for c in box.commands)


def test_a_release_that_carries_its_new_plugin_installs_it_into_its_virtualenv(tmp_path, healthz, built_plugin):
    """The release side builds the plugin from the new source (here: this machine's compiler, the
    image's cross-compiler for a Pi) and passes it to build-bundle."""
    from device_drivers.mqtt import journal_plugin

    new_name = release.journal_plugin_name(CHANGED)
    box = Box(tmp_path, healthz, built_plugin)
    plugin = tmp_path / "build" / new_name
    plugin.parent.mkdir()
    plugin.write_bytes(built_plugin.read_bytes())       # the bytes matter to nobody here; the name does
    out = box.bundle("0.2.0", source=CHANGED, plugin=plugin)
    manifest = release.verify(out, release.load_public_key(box.keys / "release.pub"))
    machine = journal.elf_machine(built_plugin.read_bytes())
    assert f"clinic_edge_journal-0.2.0-py3-none-linux_{machine}.whl" in manifest.wheels
    box.apply(out)
    assert box.plugins()["0.2.0"] == [new_name]
    assert journal_plugin.file_name() == built_plugin.name    # the checkout's own source: untouched


def test_a_plugin_that_is_not_the_one_the_version_loads_is_refused_when_the_bundle_is_made(tmp_path, healthz,
                                                                                          built_plugin):
    box = Box(tmp_path, healthz, built_plugin)
    with pytest.raises(BundleRefused, match="is not the journal plugin version 0.2.0 loads"):
        box.bundle("0.2.0", source=CHANGED, plugin=built_plugin)


def test_a_plugin_built_for_another_machine_is_refused_naming_both(tmp_path, healthz, built_plugin):
    box = Box(tmp_path, healthz, built_plugin)
    data = bytearray(built_plugin.read_bytes())
    other = 183 if journal.elf_machine(bytes(data)) != "aarch64" else 62
    data[18:20] = other.to_bytes(2, "little")
    plugin = tmp_path / built_plugin.name
    plugin.write_bytes(bytes(data))
    path = box.bundle("0.2.0", plugin=plugin)
    with pytest.raises(BundleRefused, match=f"built for {journal.MACHINES[other]}, this box is"):
        box.apply(path)
    assert os.readlink(box.prefix / "current") == "0.1.0"


def test_an_install_whose_releases_carry_no_plugin_is_left_alone(tmp_path, healthz, built_plugin):
    """A checkout's or a test's prefix: the broker builds its plugin into the user's cache there."""
    box = Box(tmp_path, healthz, built_plugin, machine_plugin=False)
    box.apply(box.bundle("0.2.0", source=CHANGED))
    assert box.plugins() == {"0.1.0": [], "0.2.0": []}


def test_a_box_from_before_verifies_a_bundle_that_carries_a_plugin(tmp_path, healthz, built_plugin):
    """The wrapper is listed like any wheel: the checks of a box that knows nothing of plugins (every
    member a signed *.whl) pass, and its pip never installs a wheel nobody requires."""
    box = Box(tmp_path, healthz, built_plugin)
    out = box.bundle("0.2.0", plugin=built_plugin)
    import tarfile
    with tarfile.open(out) as tar:
        names = tar.getnames()
        body = json.loads(tar.extractfile("manifest.json").read())
    assert set(names) == {"manifest.json", "manifest.sig"} | {f"wheels/{w['file']}" for w in body["wheels"]}
    assert all(release.WHEEL.fullmatch(w["file"]) for w in body["wheels"])
    wrapper = next(n for n in names if "clinic_edge_journal-" in n)
    with tarfile.open(out) as tar, zipfile.ZipFile(io.BytesIO(tar.extractfile(wrapper).read())) as z:
        assert z.read(built_plugin.name) == built_plugin.read_bytes()
        assert "clinic_edge_journal-0.2.0.dist-info/RECORD" in z.namelist()


# /healthz of a box whose county platform refuses its documents (direct sending, docs/interop.md §6)
PLATFORM_REFUSING = {"ok": False, "store": "ok", "disk": "ok", "failing": ["direct"],
                     "direct": "refusing: the platform refused 1 document in the last day"}


def test_a_platform_that_refused_before_the_update_does_not_roll_it_back(tmp_path, built_plugin):
    """The platform's refusal is not the new release's doing: the update stays (it rolled back before)."""
    with healthz_server(503, PLATFORM_REFUSING) as url:
        box = Box(tmp_path, url, built_plugin)
        outcome = box.apply(box.bundle("0.2.0"))
    assert outcome.new == "0.2.0" and not outcome.rolled_back
    assert os.readlink(box.prefix / "current") == "0.2.0"


def test_a_platform_check_that_starts_failing_with_the_update_rolls_it_back(tmp_path, built_plugin):
    """Healthy before, refusing after: the new release may build documents the platform refuses."""
    with healthz_server(200, {"ok": True, "failing": []}, then=[(503, PLATFORM_REFUSING)]) as url:
        box = Box(tmp_path, url, built_plugin)
        with pytest.raises(update.UpdateFailed) as failed:
            box.apply(box.bundle("0.2.0"))
    assert "did not report healthy" in str(failed.value) and "refusing" in str(failed.value)
    assert os.readlink(box.prefix / "current") == "0.1.0"


def test_a_box_check_is_held_against_the_update_even_when_it_failed_before(tmp_path, built_plugin):
    """Only checks of systems outside the box are tolerated: a store that fails stays a failure."""
    broken = {"ok": False, "store": "error: disk I/O error", "disk": "ok", "failing": ["store"]}
    with healthz_server(503, broken) as url:
        box = Box(tmp_path, url, built_plugin)
        with pytest.raises(update.UpdateFailed):
            box.apply(box.bundle("0.2.0"))
    assert os.readlink(box.prefix / "current") == "0.1.0"
