"""Where the broker's journal plugin (clinic_journal.c, a mosquitto plugin) is, built when needed.

The shared object is named after a hash of its source, so a changed source is built again:
- the appliance image builds it on the build host (image/build, cross-compiled for arm64) into
  `<venv>/lib/clinic-edge/` and carries no compiler; an update whose source is unchanged uses
  the one of an earlier version, copied into the new release; an update that changes the source
  carries the new one (edge/appliance/journal.py, docs/operations.md);
- elsewhere (`./run`, the tests) it is compiled once with `cc` against Debian's mosquitto-dev
  headers into `~/.cache/clinic-edge/` (or $CLINIC_EDGE_PLUGIN_CACHE) and reused.
docs/mqtt.md, "The broker's journal".
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edge.core import release

SOURCE = Path(__file__).with_name("clinic_journal.c")
BUILD_PACKAGES = "gcc libc6-dev mosquitto-dev libmosquitto-dev"
CFLAGS = ["-O2", "-Wall", "-fPIC", "-shared"]


class JournalPluginError(Exception):
    """The plugin cannot be found or built: the broker must not run without it."""


def file_name() -> str:
    return release.journal_plugin_name(SOURCE.read_bytes())


def installed_dir() -> Path:
    """Where an installation keeps a plugin built for it (the image's virtualenv)."""
    return Path(sys.prefix) / "lib" / "clinic-edge"


def cache_dir() -> Path:
    env = os.environ.get("CLINIC_EDGE_PLUGIN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clinic-edge"


def plugin_path() -> Path:
    """The built plugin for this source: the installed one, the cached one, or built now."""
    name = file_name()
    for d in (installed_dir(), cache_dir()):
        if (d / name).is_file():
            return d / name
    # an appliance update installs a new virtualenv beside the old ones: the same source's
    # plugin built for an earlier version is the same plugin
    for other in sorted(installed_dir().parent.parent.parent.glob(f"*/lib/clinic-edge/{name}")):
        return other
    return build(cache_dir())


def build(into: Path) -> Path:
    """Compile the plugin into `into` (atomically: another process may be building it too)."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None or not Path("/usr/include/mosquitto_broker.h").exists():
        raise JournalPluginError(
            f"the broker's journal plugin ({SOURCE.name}) is not built and cannot be: install "
            f"{BUILD_PACKAGES} (./run does) and start again")
    into.mkdir(parents=True, exist_ok=True)
    target = into / file_name()
    fd, tmp = tempfile.mkstemp(prefix=".clinic_journal-", suffix=".so", dir=into)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise JournalPluginError(f"building the broker's journal plugin failed:\n{proc.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
