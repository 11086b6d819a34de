"""`clinic-edge update apply BUNDLE`: A/B-style updates of the virtualenv, rolled back by themselves.

Layout under `[update] prefix` (/opt/clinic-edge on the appliance):

    0.1.0/            one virtualenv per version (bin/clinic-edge inside)
    0.2.0/
    current -> 0.2.0  the services' ExecStart goes through this symlink

Steps: verify the bundle (signature, hashes, newer than `current`) -> install its wheels into a
new virtualenv (offline: `pip --no-index`) -> back up the database (SQLite online backup) ->
switch `current` atomically -> restart the services -> wait until /healthz says ok *and* reports
the new version. If that does not happen within `[update] health_timeout`, switch back, stop the
services, restore the backup, start the old version again and record the failure. A refused
bundle changes nothing.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Callable

from edge.core.errors import CoreError
from edge.core.ingest import carry_forward
from edge.core import durable, release
from edge.core.node import Node

from . import bundle, journal
from .backup import restore_file
from .errors import BundleRefused, UpdateFailed

log = logging.getLogger(__name__)
Run = Callable[[list[str]], None]


@dataclass
class Layout:
    prefix: Path

    @property
    def current(self) -> Path:
        return self.prefix / "current"

    def current_version(self) -> str | None:
        try:
            return os.readlink(self.current).rstrip("/").rsplit("/", 1)[-1]
        except OSError:
            return None

    def switch(self, version: str) -> None:
        """Point `current` at `version` in one rename (never a moment without a `current`)."""
        tmp = self.prefix / f".current-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(version, tmp)
        os.replace(tmp, self.current)
        durable.fsync_dir(self.prefix)   # after a power cut the box runs the version its database has

    def versions(self) -> list[str]:
        """Installed versions: real directories (never a symlink) named like a release version."""
        return sorted(p.name for p in self.prefix.iterdir()
                      if release.VERSION.fullmatch(p.name) and p.is_dir() and not p.is_symlink())

    def prune(self, keep: set[str]) -> list[str]:
        """Remove every installed version but `keep` (each virtualenv is ~130 MB of the data partition).
        Only version directories directly under the prefix; rmtree never follows a symlink out."""
        gone = [v for v in self.versions() if v not in keep]
        for v in gone:
            shutil.rmtree(self.prefix / v, ignore_errors=True)
        return gone


def check_trusted_paths(node: Node, cfg: dict) -> None:
    """The install prefix and the release key never lie in (or around) the writable data directory."""
    data = node.data_dir.resolve()
    prefix, key = Path(cfg["prefix"]).resolve(), Path(cfg["release_key"]).resolve()
    if prefix == data or prefix.is_relative_to(data) or data.is_relative_to(prefix):
        raise BundleRefused(f"[update] prefix {cfg['prefix']} overlaps the data directory {node.data_dir}: "
                            f"refused (nothing changed)")
    if key.is_relative_to(data):
        raise BundleRefused(f"[update] release_key {cfg['release_key']} lies in the writable data directory "
                            f"{node.data_dir}: refused (nothing changed); the key belongs on the read-only root")


@dataclass
class Outcome:
    old: str | None
    new: str
    backup: Path | None
    rolled_back: bool = False


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, timeout=600, stdin=subprocess.DEVNULL)


def apply(node: Node, bundle_path: Path, *, run: Run = _run, sleep=time.sleep,
          clock=time.monotonic) -> Outcome:
    cfg = node.config["update"]
    layout = Layout(Path(cfg["prefix"]))
    check_trusted_paths(node, cfg)
    public = bundle.load_public_key(Path(cfg["release_key"]))
    # signed by the release key and newer than what runs, before anything is touched (a refused
    # bundle must not prune the release a rollback would need)
    new = bundle.verify(bundle_path, public).version
    old = layout.current_version()
    if old is not None and bundle.version_key(new) <= bundle.version_key(old):
        raise BundleRefused(f"{bundle_path} holds version {new}, not newer than the running {old}: "
                            f"refused (nothing changed)")
    layout.prefix.mkdir(parents=True, exist_ok=True)
    if old:
        journal.gather(layout.prefix, layout.prefix / old)   # the broker's plugin outlives the release that brought it
    layout.prune({old} if old else set())   # older releases than the running one go first
    check_space(node, layout, bundle_path)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=layout.prefix) as tmp:
        wheels = Path(tmp) / "wheels"
        if bundle.verify(bundle_path, public, dest=wheels).version != new:   # the file changed meanwhile
            raise BundleRefused(f"{bundle_path} changed while it was being installed: refused (nothing changed)")
        plugin = journal.choose(layout.prefix, wheels, new)
        install(cfg["python"], layout.prefix / new, wheels, new, run=run)
        if plugin is not None:
            journal.place(plugin, layout.prefix / new)
    outcome = Outcome(old, new, None)
    if node.config.store_path.exists():
        outcome.backup = node.store.backup(node.path("backups", f"pre-update-{old}-to-{new}.db"))
    node.close()  # the services are about to restart; this process holds no lock over it
    log.info("switching %s -> %s", old, new)
    before = failing_outside(cfg["health_url"])
    layout.switch(new)
    waited = restart_and_wait(cfg, new, run=run, sleep=sleep, clock=clock, tolerated=before)
    if waited.healthy:
        node.write_status("update", {"result": "ok", "from": old, "to": new, "at": _now_iso(node),
                                     "waited_s": round(waited.waited_s, 1)})
        layout.prune({new, old})         # the previous release stays for a manual switch back
        return outcome
    rollback(node, layout, outcome, waited, run=run, sleep=sleep, clock=clock)
    raise UpdateFailed(f"version {new} did not report healthy: {waited.summary()}; rolled back to {old} and "
                       f"restored the database from {outcome.backup}")


def restart_and_wait(cfg: dict, version: str, *, run: Run, sleep, clock,
                     tolerated: frozenset[str] = frozenset()) -> "HealthWait":
    """Restart the services on `version` and wait for its /healthz. A restart command that fails
    (a unit that cannot even start) is an unhealthy release too: the caller rolls back."""
    command = shlex.split(cfg["restart_command"])
    try:
        run(command)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        log.error("restart command failed for %s: %s", version, e)
        return HealthWait(False, cfg["health_url"], version, 0.0, 0, "restart failed", f"{shlex.join(command)}: {e}")
    return wait_for_health(cfg["health_url"], version, cfg["health_timeout"], sleep=sleep, clock=clock,
                           tolerated=tolerated)


# /healthz checks of a system outside the box (the county platform refusing or not answering direct
# sending, docs/interop.md §6): one that already failed before the update is not the new release's
# doing, so it does not roll the update back; one that starts failing with it does.
OUTSIDE_CHECKS = frozenset({"direct"})


def failing_outside(url: str) -> frozenset[str]:
    """The outside checks the running release's /healthz reports failing (none when it does not answer)."""
    body, _, _ = probe(url)
    return frozenset(body.get("failing") or ()) & OUTSIDE_CHECKS if body else frozenset()


MB = 1 << 20
VENV_ESTIMATE = 4           # an installed virtualenv is about 4x its wheels


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def check_space(node: Node, layout: Layout, bundle_path: Path) -> None:
    """Refuse before touching anything when the data partition cannot hold the unpacked bundle, the
    new virtualenv and the database backup (a full disk mid-install helps nobody)."""
    size = bundle_path.stat().st_size
    running = layout.prefix / (layout.current_version() or "-")
    venv = _tree_size(running) if running.is_dir() else VENV_ESTIMATE * size
    db = node.config.store_path.stat().st_size if node.config.store_path.exists() else 0
    needed = size + venv + db + 50 * MB
    free = shutil.disk_usage(layout.prefix).free
    if free < needed:
        raise BundleRefused(f"not enough space on the data partition for this update: it needs about "
                            f"{needed // MB} MB, {free // MB} MB are free. Remove old backups from "
                            f"{node.path('backups')} (copies are on the USB drive) or run `clinic-edge "
                            f"doctor`; nothing changed")


def install(python: str, target: Path, wheels: Path, version: str, *, run: Run = _run) -> None:
    """A fresh virtualenv at `target` with clinic-edge==version from the bundle's wheels only."""
    if target.exists():  # a leftover of an interrupted attempt (never `current`: it is older)
        shutil.rmtree(target)
    try:
        run([python, "-m", "venv", str(target)])
        run([str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-cache-dir",
             "--disable-pip-version-check", "--find-links", str(wheels), f"clinic-edge=={version}"])
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        shutil.rmtree(target, ignore_errors=True)
        raise BundleRefused(f"installing version {version} failed ({e}); the bundle lacks a wheel or "
                            f"does not fit this Python; nothing changed") from e
    readable_by_services(target)


def readable_by_services(tree: Path) -> None:
    """The release belongs to root but the services run as their own user: directories 0755, files
    0644 (0755 when executable). The updater runs under umask 077 (edge/cli.py), which would leave
    the new virtualenv 0700 and every service unable to start."""
    for path in (tree, *tree.rglob("*")):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        want = 0o755 if path.is_dir() or mode & 0o100 else 0o644
        if mode & 0o777 != want | (mode & 0o700):
            path.chmod(want | (mode & 0o700))


def rollback(node: Node, layout: Layout, outcome: Outcome, why: HealthWait | None = None, *, run: Run = _run,
             sleep=time.sleep, clock=time.monotonic) -> None:
    cfg = node.config["update"]
    log.error("version %s is not healthy: rolling back to %s", outcome.new, outcome.old)
    if outcome.old is not None:
        layout.switch(outcome.old)
    try:
        run(shlex.split(cfg["stop_command"]))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        log.error("stop command failed during rollback: %s", e)
    if outcome.backup is not None:
        failed = keep_failed_copy(node, outcome.new)
        restore_file(outcome.backup, node.config.store_path)
        if failed is not None:
            carried, skipped = carry_forward(node.store, str(failed), actor="update-rollback",
                                             now=node.clock.now())
            node.close()
            log.info("carried %d readings stored by %s into the restored database (%d of unknown devices "
                     "left in %s)", carried, outcome.new, skipped, failed)
    back = None
    if outcome.old is not None:
        back = restart_and_wait(cfg, outcome.old, run=run, sleep=sleep, clock=clock)
    else:
        try:
            run(shlex.split(cfg["restart_command"]))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            log.error("restart command failed during rollback: %s", e)
    outcome.rolled_back = True
    # why, kept on the box (run/update.json): `doctor` shows it, and the hub learns it from the
    # sync client's health report (edge.core.node_health)
    node.write_status("update", {"result": "rolled back", "from": outcome.old, "to": outcome.new, "at": _now_iso(node),
                                 "reason": why.reason() if why else None,
                                 "old_version_healthy": bool(back and back.healthy),
                                 "old_version_reason": back.reason() if back and not back.healthy else None,
                                 "backup": str(outcome.backup)})


def record_refused(node: Node, bundle_path: Path, error: Exception) -> None:
    """A bundle refused before anything changed is a failed update too: say why (doctor, hub)."""
    node.write_status("update", {"result": "refused", "bundle": bundle_path.name, "at": _now_iso(node),
                                 "reason": {"check": "bundle", "failed": "refused", "output": str(error)[:OUTPUT_CHARS],
                                            "summary": str(error)[:300]}})


def _now_iso(node: Node) -> str:
    return node.clock.now().astimezone(timezone.utc).isoformat(timespec="seconds")


def keep_failed_copy(node: Node, version: str) -> Path | None:
    """A consistent copy of the database as the failed version left it (services stopped)."""
    if not node.config.store_path.exists():
        return None
    try:
        return node.store.backup(node.path("backups", f"failed-update-{version}.db"))
    except CoreError as e:
        log.error("could not keep the failed version's database: %s", e)
        return None
    finally:
        node.close()


OUTPUT_CHARS = 1000        # of the last /healthz answer kept in the reason (it goes to the hub too)


@dataclass
class HealthWait:
    """What waiting for /healthz found: healthy or not, and if not which check failed, its last
    output (the JSON body, or the connection error) and how long it waited (issue 18)."""
    healthy: bool
    url: str
    version: str
    waited_s: float
    attempts: int
    failed: str = ""       # "no answer" | "not ok" | "other version" | "restart failed"
    output: str = ""

    def reason(self) -> dict:
        return {"check": f"GET {self.url}", "failed": self.failed, "output": self.output[:OUTPUT_CHARS],
                "waited_s": round(self.waited_s, 1), "attempts": self.attempts, "expected_version": self.version,
                "summary": self.summary()}

    def summary(self) -> str:
        if self.failed == "restart failed":
            return f"the services did not start on {self.version}: {self.output[:300]}"
        what = {"no answer": "never answered", "not ok": "answered but did not report ok",
                "other version": f"answered for another version than {self.version}"}.get(self.failed, self.failed)
        return (f"{self.url} {what} within {self.waited_s:.0f} s ({self.attempts} tries); last answer: "
                f"{self.output[:300]}")


def probe(url: str, timeout: float = 3.0) -> tuple[dict | None, int | None, str]:
    """One GET of /healthz: (JSON body or None, HTTP status or None, what it said, as text)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            raw = r.read(64 * 1024)
            status = r.status
    except urllib.error.HTTPError as e:   # 503 and friends still carry /healthz's body
        raw, status = e.read(64 * 1024), e.code
    except (OSError, ValueError) as e:
        return None, None, f"{e.__class__.__name__}: {getattr(e, 'reason', e)}"
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return (body if isinstance(body, dict) else None), status, f"HTTP {status}: {text}"


def health(url: str, timeout: float = 3.0) -> dict | None:
    """/healthz's JSON, or None when it does not answer 200."""
    body, status, _ = probe(url, timeout)
    return body if status == 200 else None


def wait_for_health(url: str, version: str, timeout: float, *, sleep=time.sleep,
                    clock=time.monotonic, tolerated: frozenset[str] = frozenset()) -> HealthWait:
    start = clock()
    deadline = start + timeout
    attempts, failed, output = 0, "no answer", "no attempt was made"
    while clock() < deadline:
        body, status, output = probe(url)
        attempts += 1
        if body is None or status is None:
            failed = "no answer" if status is None else "not ok"
        elif not (status == 200 and body.get("ok")) and not _only(body, tolerated):
            failed = "not ok"
        elif body.get("version", version) != version:
            failed = "other version"
        else:
            return HealthWait(True, url, version, clock() - start, attempts)
        sleep(0.5)
    return HealthWait(False, url, version, clock() - start, attempts, failed, output)


def _only(body: dict, tolerated: frozenset[str]) -> bool:
    """The answer fails only checks that are tolerated (they failed before the update too)."""
    failing = body.get("failing")
    return bool(tolerated) and isinstance(failing, list) and bool(failing) and set(failing) <= tolerated


def wait_healthy(url: str, version: str, timeout: float, *, sleep=time.sleep, clock=time.monotonic) -> bool:
    return wait_for_health(url, version, timeout, sleep=sleep, clock=clock).healthy
