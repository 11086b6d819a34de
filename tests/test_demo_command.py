"""`clinic-edge demo` (PINNED: a complete node on embedded defaults) as a new user meets it: one
command, then an address, a password and a node whose readings reach the county hub. The hub and
the node are separate processes enrolled with the commands county IT types (`hub node add`,
`enroll --hub-key`)."""
from __future__ import annotations

import json
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import wait_for


def test_demo_starts_a_node_over_tls_whose_records_reach_the_hub(env, data_dir, tmp_path):
    log = open(tmp_path / "demo.err", "w")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "demo", "--rate", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    try:
        banner = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"demo ended early: {(tmp_path / 'demo.err').read_text()[-2000:]}"
            banner.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(banner)
        url = re.search(r"open:\s+(\S+)", text).group(1)
        assert url.startswith("https://127.0.0.1:")
        assert re.search(r"log in: user doctor, password \S+", text)
        ca = ssl.create_default_context(cafile=str(data_dir / "tls" / "county-ca.pem"))
        with urllib.request.urlopen(url + "healthz", context=ca, timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["ok"] is True
        try:     # a client without the county root is refused
            urllib.request.urlopen(url + "healthz", timeout=10)
            raise AssertionError("served to a client that does not trust the county root")
        except urllib.error.URLError as e:
            assert isinstance(e.reason, ssl.SSLCertVerificationError)

        def hub_records() -> int:
            out = subprocess.run([sys.executable, "-m", "edge", "hub", "export", "--json"], env=env,
                                 capture_output=True, text=True, timeout=60)
            return out.returncode == 0 and sum(1 for r in json.loads(out.stdout) if r["kind"] == "reading")
        wait_for(hub_records, timeout=120, interval=2, message="the simulated readings at the hub")
        assert "enrolled as" in (tmp_path / "demo.err").read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
