"""Memory benchmark (issue 17.2): what the node's services hold while the demo runs.

Starts `clinic-edge demo` in a fresh data directory (broker, ingest, web, sync, simulated devices
and the demo's county hub, each its own process), lets it run `--seconds` while a browser-like
client opens the workbench's busiest pages, then prints each service's resident memory (VmRSS)
and proportional share (Pss, which splits pages shared between processes) beside the goal:
broker + ingest + web + sync together <= 120 MB. Then, per service, what importing its entry
module alone costs (a fresh interpreter, RSS after the imports), which is the part lazy imports
can save.

First, what the web process loads the first time a resident's name is written (pypinyin): as
built beside pypinyin with its phrase tables (as before issue 17.2), in the same run.

usage: .venv/bin/python bench/memory.py [--seconds 120] [--name-only]
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_MB = 120
NODE_SERVICES = ("broker", "ingest", "web", "sync")
# which process is which: a pattern on its command line
SERVICES = {"broker": r"(^|/)mosquitto\b", "ingest": r"-m edge ingest\b", "web": r"-m edge serve\b",
            "sync": r"-m edge sync$", "hub": r"-m edge hub serve\b", "devices": r"-m edge simulate\b",
            "demo": r"-m edge demo\b"}
# what each service's process imports before it serves (its command's module)
ENTRY = {"ingest": "device_drivers.cli", "web": "edge.web", "sync": "sync.client.daemon",
         "hub": "sync.hub.app"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kb(pid: int, field: str, source: str) -> int:
    try:
        text = Path(f"/proc/{pid}/{source}").read_text()
    except OSError:
        return 0
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def parent(pid: str) -> int:
    """The parent pid of a process (field 4 of /proc/<pid>/stat, after the parenthesised name)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def processes(root: int) -> dict[str, list[int]]:
    """The demo's processes by service: only `root` and its descendants (the machine may run
    other demos, whose processes match the same patterns)."""
    pids = [d.name for d in Path("/proc").iterdir() if d.name.isdigit()]
    parents = {int(p): parent(p) for p in pids}
    mine = {root}
    grew = True
    while grew:
        more = {p for p, pp in parents.items() if pp in mine} - mine
        mine |= more
        grew = bool(more)
    found: dict[str, list[int]] = {}
    for pid in sorted(mine):
        d = Path(f"/proc/{pid}")
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        for name, pattern in SERVICES.items():
            if re.search(pattern, cmd):
                found.setdefault(name, []).append(int(d.name))
    return found


def browse(port: int, rounds: int) -> None:
    """Open the pages a doctor opens (login page, then the public health check) over HTTPS;
    the demo prints the doctor's password, which this does not read: pages behind the login
    answer a redirect, which still loads the app's templates and translations."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for _ in range(rounds):
        for path in ("/login", "/healthz", "/", "/reports/monthly", "/worklist"):
            for scheme in ("https", "http"):
                try:
                    urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}{path}", context=ctx, timeout=10).read()
                    break
                except Exception:
                    continue


def import_cost(module: str, env: dict) -> int:
    code = (f"import {module}, re, pathlib; "
            "print(re.search(r'VmRSS:\\s+(\\d+)', pathlib.Path('/proc/self/status').read_text()).group(1))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    return int(r.stdout.strip() or 0)


MEMORY = ("import re, pathlib\n"
          "def mb(field, source):\n"
          "    text = pathlib.Path('/proc/self/' + source).read_text()\n"
          "    return int(re.search(field + r':\\s+(\\d+)', text).group(1)) / 1024\n"
          "print(mb('VmRSS', 'status'), mb('Pss', 'smaps_rollup'))\n")
NAME_WRITTEN = {   # what the web process loads the first time a resident's name is written
    "as built (per character, no phrase tables)":
        "from edge.core.resident_search import initials\nassert initials('单长乐')[0] == 'scl'\n",
    "before: pypinyin with its phrase tables":
        "from pypinyin import Style, pinyin\npinyin('单长乐', style=Style.FIRST_LETTER, heteronym=True)\n",
}


def name_cost(env: dict) -> None:
    """RSS / PSS of a fresh interpreter holding the web's entry module, then after writing one
    resident's name (pypinyin loaded) as built and as before issue 17.2, measured in this run."""
    def measure(code: str) -> tuple[float, float]:
        r = subprocess.run([sys.executable, "-c", f"import {ENTRY['web']}\n{code}{MEMORY}"], env=env,
                           capture_output=True, text=True, cwd=ROOT)
        rss, pss = r.stdout.split()[-2:]
        return float(rss), float(pss)
    base = measure("")
    print(f"web process, a resident's name written (RSS / PSS, MB): {ENTRY['web']} alone "
          f"{base[0]:.1f} / {base[1]:.1f}")
    for what, code in NAME_WRITTEN.items():
        rss, pss = measure(code)
        print(f"  {what}: {rss:.1f} / {pss:.1f} (+{rss - base[0]:.1f} / +{pss - base[1]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--name-only", action="store_true", help="only what writing a resident's name costs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_EDGE_")}
        env["CLINIC_EDGE_DATA"] = str(Path(tmp) / "data")
        name_cost(env)
        if args.name_only:
            return
        web = free_port()
        demo = subprocess.Popen([sys.executable, "-m", "edge", "demo", "--web-port", str(web), "--rate", "1"],
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not set(NODE_SERVICES) <= set(processes(demo.pid)):
                time.sleep(1)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                browse(web, 1)
                time.sleep(5)
            procs = processes(demo.pid)
            print(f"after {args.seconds:.0f} s of the demo at 1 reading/s (RSS / PSS, MB):")
            total_rss = total_pss = 0.0
            for name in SERVICES:
                pids = procs.get(name, [])
                rss = sum(kb(p, "VmRSS", "status") for p in pids) / 1024
                pss = sum(kb(p, "Pss", "smaps_rollup") for p in pids) / 1024
                mark = ""
                if name in NODE_SERVICES:
                    total_rss, total_pss, mark = total_rss + rss, total_pss + pss, " *"
                print(f"  {name:8s} {rss:6.1f} / {pss:6.1f}{mark}")
            print(f"  node services (*) together: RSS {total_rss:.1f} MB, PSS {total_pss:.1f} MB "
                  f"(goal <= {GOAL_MB} MB)")
        finally:
            os.killpg(demo.pid, 15)
            demo.wait(30)
        print("RSS of a fresh interpreter after importing each service's entry module (MB):")
        base = import_cost("sys", env) / 1024
        print(f"  python alone {base:6.1f}")
        for name, module in ENTRY.items():
            print(f"  {name:8s} {import_cost(module, env) / 1024:6.1f}  ({module})")


if __name__ == "__main__":
    main()
