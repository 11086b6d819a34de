"""The broker's journal plugin on the way from a release to a box (docs/operations.md, "The broker's
journal plugin in an update").

The plugin (device_drivers/mqtt/clinic_journal.c, docs/mqtt.md) is a shared object built for the
box's architecture; the box carries no compiler. The image puts it in its release's virtualenv
(`<prefix>/<version>/lib/clinic-edge/clinic_journal-<source hash>.so`). An update:

- carries it when its source changed: `update build-bundle --plugin FILE` wraps the built object
  in a small wheel (`clinic_edge_journal-<version>-py3-none-linux_<machine>.whl`) listed in the
  signed manifest like any wheel, so a box from before this module still verifies the bundle (it
  ignores a wheel nobody requires);
- copies it from the running release when the source is unchanged, so the new release holds its
  own and pruning the release that brought it loses nothing;
- is refused before anything is installed when the new release needs a plugin that neither the
  bundle nor an installed release has, or that is built for another machine.

A prefix whose releases carry no plugin (a checkout's or a test's: the plugin is built into the
user's cache there) is left alone.
"""
from __future__ import annotations

import base64
import hashlib
import io
import platform
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge.core import release

from .errors import BundleRefused

SOURCE = "device_drivers/mqtt/clinic_journal.c"
PLUGIN = re.compile(r"clinic_journal-[0-9a-f]{16}\.so")
WRAPPER = re.compile(r"clinic_edge_journal-[^-]+-py3-none-linux_(\w+)\.whl")
LIB = Path("lib") / "clinic-edge"
# ELF e_machine (System V ABI, "Machine Information") -> `uname -m`
MACHINES = {62: "x86_64", 183: "aarch64", 40: "armv7l", 3: "i686", 243: "riscv64"}


@dataclass(frozen=True)
class Plugin:
    name: str
    data: bytes
    machine: str


def elf_machine(data: bytes) -> str:
    """The architecture a shared object is built for, from its ELF header."""
    if data[:4] != b"\x7fELF" or len(data) < 20:
        raise BundleRefused("the journal plugin is not an ELF shared object")
    code = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")
    return MACHINES.get(code, f"elf-machine-{code}")


def needed(wheels: Path) -> str | None:
    """The plugin the release in `wheels` loads, from the journal source inside its wheel (None
    when its wheel has no such source: not a release that runs the broker)."""
    own = sorted(wheels.glob("clinic_edge-*.whl"))
    if len(own) != 1:
        return None
    with zipfile.ZipFile(own[0]) as z:
        try:
            return release.journal_plugin_name(z.read(SOURCE))
        except KeyError:
            return None


def wrap(plugin: Path, version: str) -> tuple[str, bytes]:
    """A wheel holding the built plugin: (file name, bytes). Minimal but valid (PEP 427 RECORD)."""
    data = plugin.read_bytes()
    if not PLUGIN.fullmatch(plugin.name):
        raise BundleRefused(f"{plugin} is not a built journal plugin (clinic_journal-<16 hex>.so)")
    machine = elf_machine(data)
    dist = f"clinic_edge_journal-{version}.dist-info"
    files = {plugin.name: data,
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: clinic-edge-journal\nVersion: {version}\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: clinic-edge\nRoot-Is-Purelib: false\n"
                              b"Tag: py3-none-linux_" + machine.encode() + b"\n"}
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for n, d in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, d in files.items():
            z.writestr(name, d)
    return f"clinic_edge_journal-{version}-py3-none-linux_{machine}.whl", out.getvalue()


def carried(wheels: Path) -> Plugin | None:
    """The plugin a bundle carries (its wrapper wheel, already hash-checked by release.verify)."""
    for w in sorted(wheels.glob("clinic_edge_journal-*.whl")):
        m = WRAPPER.fullmatch(w.name)
        with zipfile.ZipFile(w) as z:
            names = [n for n in z.namelist() if PLUGIN.fullmatch(n)]
            if m is None or len(names) != 1:
                raise BundleRefused(f"{w.name} in the bundle is not a journal plugin wheel")
            data = z.read(names[0])
        return Plugin(names[0], data, elf_machine(data))
    return None


def installed(prefix: Path) -> dict[str, Path]:
    """Plugins the releases under `prefix` carry, by file name."""
    return {p.name: p for p in sorted(prefix.glob(f"*/{LIB}/clinic_journal-*.so"))}


def choose(prefix: Path, wheels: Path, version: str, machine: str | None = None) -> Plugin | None:
    """The plugin to put into the new release, or None where releases carry none. Refuses the
    bundle, saying what to do, when the new release would start a broker without its plugin."""
    machine = machine or platform.machine()
    have = installed(prefix)
    bundled = carried(wheels)
    if bundled is not None and bundled.machine != machine:
        raise BundleRefused(f"the bundle's journal plugin {bundled.name} is built for {bundled.machine}, this box "
                            f"is {machine}: build it for {machine} (image/build does) and make the bundle again; "
                            "nothing changed")
    if not have and bundled is None:
        return None
    name = needed(wheels)
    if name is None:
        return bundled
    if bundled is not None and bundled.name == name:
        return bundled
    if name in have:
        return Plugin(name, have[name].read_bytes(), machine)
    raise BundleRefused(f"version {version} needs the broker's journal plugin {name} (its source changed) and "
                        f"the bundle does not carry it{f' (it carries {bundled.name})' if bundled else ''}: "
                        f"build the plugin for {machine} and make the bundle with `clinic-edge update "
                        "build-bundle --plugin FILE` (docs/operations.md); nothing changed")


def place(plugin: Plugin, release: Path) -> Path:
    """Put the plugin into a release's virtualenv, where its broker looks first (readable by the
    services whatever the updater's umask)."""
    target = release / LIB / plugin.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    target.write_bytes(plugin.data)
    target.chmod(0o755)
    return target


def gather(prefix: Path, running: Path) -> list[str]:
    """Copy every plugin another release holds into the running one, before older releases are
    pruned: a release installed before plugins travelled with updates loads the image's plugin
    from the image's release, and would lose it (and its broker) with it."""
    moved = []
    for name, path in installed(prefix).items():
        if running.is_dir() and path.parent != running / LIB and not (running / LIB / name).exists():
            place(Plugin(name, path.read_bytes(), ""), running)
            moved.append(name)
    return moved
