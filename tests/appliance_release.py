"""Helpers for the appliance tests: real wheels of this checkout under another version number
(optionally a deliberately broken release), the dependency wheels cached between runs, and a
tiny "service manager" standing in for systemctl that runs `<prefix>/current/bin/clinic-edge serve`."""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from edge.core import durable

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CLINIC_EDGE_TEST_CACHE", "/var/cache/clinic-edge-test"))


def dependency_wheels() -> Path:
    """Wheels of every runtime dependency, built once per dependency list and kept in CACHE."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    key = hashlib.sha256("\n".join(sorted(deps)).encode()).hexdigest()[:12]
    out = CACHE / f"wheels-{key}"
    with durable.exclusive(CACHE / ".wheels.lock"):     # two test workers build it once
        if not (out / ".complete").exists():
            out.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                            "-w", str(out), *deps], check=True, timeout=900)
            (out / ".complete").touch()
    return out


def project_wheel(version: str, dest: Path, *, broken: bool = False) -> Path:
    """A wheel folder for clinic-edge VERSION of this checkout plus every dependency wheel.
    broken=True: a release whose /healthz always fails and which adds a migration (version 499),
    so a rollback has a database change to undo. The checkout is built once (`base_wheel`); each
    version is that wheel under another version number."""
    out = dest / f"wheels-{version}{'-broken' if broken else ''}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    relabel(base_wheel(dest), version, out, BROKEN if broken else {})
    for w in dependency_wheels().glob("*.whl"):
        os.link(w, out / w.name) if _same_fs(w, out) else shutil.copy(w, out / w.name)
    return out


def _changed(text: str, old: str, new: str) -> str:
    """`text` with `old` replaced; a change of the code that leaves `old` nowhere fails here, not as a
    "broken" release that is not broken."""
    if old not in text:
        raise AssertionError(f"the broken release's patch no longer applies: {old!r} is not in the source")
    return text.replace(old, new)


def _broken_migrations(text: str) -> str:
    return text.replace("SCHEMA_MODULES = [", 'SCHEMA_MODULES = [\n    "edge.core.schema_broken",', 1)


# member -> change of its text (None: a new member with that text)
BROKEN = {
    "edge/web/health.py": lambda t: _changed(t, 'body["ok"] = not body["failing"]', 'body["ok"] = False'),
    "edge/core/migrations.py": _broken_migrations,
    "edge/core/schema_broken.py": lambda _: ("from .migrations import migration\n\n\n@migration(499, 'broken release')\n"
                                             "def broken(db):\n    db.execute('CREATE TABLE broken_release_marker (x)')\n"),
}


def base_wheel(dest: Path) -> Path:
    """The wheel of this checkout (version 0.1.0), built once per `dest` with `pip wheel`."""
    out = dest / "base-wheel"
    found = list(out.glob("clinic_edge-*.whl"))
    if found:
        return found[0]
    src = dest / "base-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("edge", "device_drivers", "sync"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(src)], check=True, timeout=300,
                   capture_output=True)
    return next(out.glob("clinic_edge-*.whl"))


def relabel(wheel: Path, version: str, out: Path, changes: dict | None = None) -> Path:
    """`wheel` as version VERSION (its file name, .dist-info folder, METADATA and RECORD, with the
    RECORD's hashes made anew), with `changes` applied to members' text. A wheel is a zip file
    whose RECORD lists every member's sha256 (PEP 427, PEP 376)."""
    old = wheel.name.split("-")[1]
    old_info, new_info = f"clinic_edge-{old}.dist-info/", f"clinic_edge-{version}.dist-info/"
    members: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as zin:
        for name in zin.namelist():
            members[name.replace(old_info, new_info, 1)] = zin.read(name)
    meta = new_info + "METADATA"
    members[meta] = members[meta].replace(f"\nVersion: {old}\n".encode(), f"\nVersion: {version}\n".encode(), 1)
    for name, change in (changes or {}).items():
        text = members[name].decode() if name in members else ""
        members[name] = change(text).encode()
    record = new_info + "RECORD"
    lines = [f"{n},sha256={_digest(d)},{len(d)}" for n, d in members.items() if n != record]
    members[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    target = out / wheel.name.replace(f"-{old}-", f"-{version}-", 1)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    return target


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def share_virtualenv(venv: Path, base: Path) -> Path:
    """A `python` for the updater's CLINIC_EDGE_UPDATE_PYTHON whose `-m venv TARGET` makes TARGET a
    hard-linked copy of `venv` (a real virtualenv the updater made, dependencies installed), so
    each later update's `pip install clinic-edge==VERSION --no-index` from the bundle installs only
    the new clinic-edge. Everything else goes to this Python. Files are replaced, never written in
    place, by pip and by Python's bytecode cache, so the copies do not change one another."""
    template = base / "venv-shared"
    subprocess.run(["cp", "-al", str(venv), str(template)], check=True)
    python = base / "python-shared-venv"
    python.write_text(f'''#!/bin/sh
if [ "$#" -eq 3 ] && [ "$1" = "-m" ] && [ "$2" = "venv" ]; then exec cp -al "{template}" "$3"; fi
exec "{sys._base_executable}" "$@"
''')
    python.chmod(0o755)
    return python


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
