"""`clinic-edge ingest` runs the ASTM, MLLP and line drivers from the node's TOML config (PINNED
sections [drivers.astm], [drivers.mllp], [drivers.lines]) as a real process; the results appear
in `clinic-edge readings --json`. Vectors: see test_serial_astm.py and test_hl7_mllp.py."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from device_drivers.astm.simulator import Analyser
from device_drivers.hl7.mllp import frame
from serial_fixtures import PlugPort
from test_hl7_mllp import PCD01
from test_serial_astm import AFINION

from conftest import clinic_edge, free_port, wait_for, wait_port


def write_config(path, astm_url, lines_url, mllp_port, extra=""):
    path.write_text(f"""
[mqtt]
enabled = false

[drivers.astm]
url = "{astm_url}"
baudrate = 9600
device_id = "afinion"
[drivers.astm.codes]
HbA1c = "4548-4"

[drivers.mllp]
listen = "127.0.0.1:{mllp_port}"
device_id = "ward-monitor"

[drivers.lines]
url = "{lines_url}"
profile = "bp-sys-dia-pul"
device_id = "bp-printer"
{extra}""")


def test_ingest_runs_all_three_drivers_from_config(env, tmp_path):
    astm, lines = PlugPort(tmp_path / "ttyASTM"), PlugPort(tmp_path / "ttyLINES")
    astm.plug(), lines.plug()
    port = free_port()
    cfg = tmp_path / "node.toml"
    write_config(cfg, astm.path, lines.path, port)
    run_env = {**env, "CLINIC_EDGE_CONFIG": str(cfg), "CLINIC_EDGE_DRIVERS_ASTM_BAUDRATE": "19200"}
    log = open(tmp_path / "ingest.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "ingest"], env=run_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 15)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(frame(PCD01))
            assert b"MSA|AA|MSGID1234" in s.recv(4096)
        analyser = Analyser(astm.master, reply_timeout=10)
        assert analyser.transmit(AFINION)
        os.write(lines.master, b"SYS:131 DIA:85 PUL:77\r\n")

        def all_three():
            rows = json.loads(clinic_edge(run_env, "readings", "--json").stdout)
            return rows if {r["device_id"] for r in rows} == {"afinion", "ward-monitor", "bp-printer"} else None

        listed = wait_for(all_three, 15, interval=0.3, message="readings from all three drivers")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        log.close()
        astm.close(), lines.close()
    got = {(r["device_id"], r["code"], r["value"]) for r in listed}
    assert {("afinion", "4548-4", 5.9), ("ward-monitor", "8480-6", 120), ("ward-monitor", "8462-4", 80),
            ("bp-printer", "8480-6", 131), ("bp-printer", "8462-4", 85), ("bp-printer", "8867-4", 77)} <= got
    assert code == 0
    devices = {d["id"]: d for d in json.loads(clinic_edge(run_env, "device", "list", "--json").stdout)}
    assert (devices["afinion"]["kind"], devices["ward-monitor"]["transport"]) == ("analyser", "hl7")


@pytest.mark.parametrize("extra_env, message", [
    ({"CLINIC_EDGE_DRIVERS_ASTM_BAUDRATE": "fast"}, "drivers.astm.baudrate = 'fast' is not allowed"),
    ({"CLINIC_EDGE_DRIVERS_MLLP_LISTEN": "2575"}, "drivers.mllp.listen = '2575' is not allowed"),
])
def test_bad_driver_config_stops_ingest_with_one_line_naming_the_key(env, tmp_path, extra_env, message):
    cfg = tmp_path / "node.toml"
    write_config(cfg, tmp_path / "none", tmp_path / "none2", free_port())
    out = clinic_edge({**env, "CLINIC_EDGE_CONFIG": str(cfg), **extra_env}, "ingest", check=False, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
