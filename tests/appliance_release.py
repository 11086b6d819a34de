"""Helpers for the appliance tests: real wheels of this checkout under another version number
(optionally a deliberately broken release), the dependency wheels cached between runs, and a
tiny "service manager" standing in for systemctl that runs `<prefix>/current/bin/clinic-edge serve`."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CLINIC_EDGE_TEST_CACHE", "/var/cache/clinic-edge-test"))


def dependency_wheels() -> Path:
    """Wheels of every runtime dependency, built once per dependency list and kept in CACHE."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    key = hashlib.sha256("\n".join(sorted(deps)).encode()).hexdigest()[:12]
    out = CACHE / f"wheels-{key}"
    if not (out / ".complete").exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                        "-w", str(out), *deps], check=True, timeout=900)
        (out / ".complete").touch()
    return out


def project_wheel(version: str, dest: Path, *, broken: bool = False) -> Path:
    """Build clinic-edge VERSION from this checkout. broken=True: a release whose /healthz always
    fails and which adds a migration (version 499), so a rollback has a database change to undo."""
    src = dest / f"src-{version}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("edge", "device_drivers", "sync"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", src / "README.md")
    pyproject = (ROOT / "pyproject.toml").read_text()
    (src / "pyproject.toml").write_text(pyproject.replace('version = "0.1.0"', f'version = "{version}"', 1))
    if broken:
        health = src / "edge/web/health.py"
        health.write_text(health.read_text().replace('body["ok"] = body["store"] == "ok"', 'body["ok"] = False'))
        (src / "edge/core/schema_broken.py").write_text(
            "from .migrations import migration\n\n\n@migration(499, 'broken release')\n"
            "def broken(db):\n    db.execute('CREATE TABLE broken_release_marker (x)')\n")
        mig = src / "edge/core/migrations.py"
        mig.write_text(mig.read_text().replace('SCHEMA_MODULES = [', 'SCHEMA_MODULES = [\n    "edge.core.schema_broken",', 1))
    out = dest / f"wheels-{version}{'-broken' if broken else ''}"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(src)], check=True, timeout=300,
                   capture_output=True)
    for w in dependency_wheels().glob("*.whl"):
        os.link(w, out / w.name) if _same_fs(w, out) else shutil.copy(w, out / w.name)
    return out


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


SERVICE_SCRIPT = '''\
"""Stand-in for systemctl in the update tests: (re)start or stop `current/bin/clinic-edge serve`."""
import os, signal, subprocess, sys, time
prefix, pidfile, listen, action = sys.argv[1:5]
try:
    pid = int(open(pidfile).read())
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
except (OSError, ValueError):
    pass
if action == "restart":
    log = open(pidfile + ".log", "ab")
    p = subprocess.Popen([os.path.join(prefix, "current", "bin", "clinic-edge"), "serve", "--listen", listen],
                         stdout=log, stderr=log, start_new_session=True)
    open(pidfile, "w").write(str(p.pid))
'''
