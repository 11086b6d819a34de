"""One poisonous message per serial/HL7 transport, against the real `clinic-edge ingest` process:
a message whose readings cannot be committed (a time that is beyond year 9999 once converted to
UTC) is refused with its reason and noted on the device; the good messages after it are stored
and acknowledged; the process stays healthy. The node's zone is UTC-12 so that 9999-12-31 23:59
local time is in year 10000 UTC."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from device_drivers.astm.simulator import Analyser
from device_drivers.hl7.mllp import frame
from serial_fixtures import PlugPort
from test_hl7_mllp import PCD01, monitor
from test_serial_astm import AFINION

from conftest import clinic_edge, free_port, wait_for, wait_port

BEYOND_9999 = "99991231235959"


def write_config(path: Path, astm_url, lines_url, mllp_port) -> None:
    path.write_text(f"""
[node]
timezone = "Etc/GMT+12"

[mqtt]
enabled = false

[drivers.astm]
url = "{astm_url}"
device_id = "afinion"
[drivers.astm.codes]
HbA1c = "4548-4"

[drivers.mllp]
listen = "127.0.0.1:{mllp_port}"
device_id = "ward-monitor"

[drivers.lines]
url = "{lines_url}"
profile = "glucose-meter-line"
device_id = "glucose-line"
""")


def ack_of(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\x1c\r"):
        chunk = sock.recv(4096)
        assert chunk, "the listener closed the connection without an answer"
        data += chunk
    return data.decode()


def test_each_transport_refuses_the_poisonous_message_and_stores_the_good_ones(env, tmp_path):
    astm, lines = PlugPort(tmp_path / "ttyASTM"), PlugPort(tmp_path / "ttyLINES")
    astm.plug(), lines.plug()
    port = free_port()
    cfg = tmp_path / "node.toml"
    write_config(cfg, astm.path, lines.path, port)
    run_env = {**env, "CLINIC_EDGE_CONFIG": str(cfg)}
    log = open(tmp_path / "ingest.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "ingest"], env=run_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 15)
        # HL7: an OBX time past 9999 in UTC -> refused (AE with the reason) or, since the parser
        # drops a time it cannot store, kept without that time; the next message -> AA, stored
        poison = monitor("POISON1").replace(b"20260912120000.0000+0530", b"99991231235959-1200")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(frame(poison))
            refused = ack_of(s)
            assert ("MSA|AE|POISON1" in refused and "could not be stored" in refused) or "MSA|AA|POISON1" in refused
            s.sendall(frame(PCD01))
            assert "MSA|AA|MSGID1234" in ack_of(s)
        # line device: the poisonous line and a good one arrive in the same read
        os.write(lines.master, f"GLU 5.6 mmol/L 9999-12-31 23:59\r\nGLU 6.2 mmol/L 2026-03-01 07:45\r\n".encode())
        # analyser: the poisonous result is NAKed (the analyser gives up after its retries) or kept
        # without the time it cannot store; the next one is stored either way
        analyser = Analyser(astm.master, reply_timeout=10)
        analyser.transmit(AFINION.replace(b"20241206140615", BEYOND_9999.encode()))
        assert analyser.transmit(AFINION.replace(b"|5.9|", b"|6.1|"))

        def stored():
            rows = json.loads(clinic_edge(run_env, "readings", "--json").stdout)
            good = {(r["device_id"], r["value"]) for r in rows if r["status"] == "valid"}
            return rows if {("afinion", 6.1), ("ward-monitor", 120), ("glucose-line", 6.2)} <= good else None

        rows = wait_for(stored, 20, interval=0.3, message="the good readings of every transport")
        status_file = Path(env["CLINIC_EDGE_DATA"]) / "run" / "ingest.json"
        wait_for(status_file.exists, 20, message="ingest's status")
        status = json.loads(status_file.read_text())
        assert status["drivers"] == {"astm": True, "mllp": True, "lines": True}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        log.close()
        astm.close(), lines.close()
    assert not any(r["effective_time"].startswith("9999") for r in rows)   # the poisonous times are never used
    got = {(r["device_id"], r["code"], r["value"]) for r in rows if r["status"] == "valid"
           and (r["device_id"], r["value"]) not in {("afinion", 5.9), ("glucose-line", 5.6)}}
    assert got >= {("afinion", "4548-4", 6.1), ("ward-monitor", "8480-6", 120), ("ward-monitor", "8462-4", 80),
                   ("glucose-line", "2339-0", 6.2)}
    assert code == 0
    devices = {d["id"]: d for d in json.loads(clinic_edge(run_env, "device", "list", "--json").stdout)}
    for device_id in ("afinion", "ward-monitor", "glucose-line"):   # a refusal is shown where county IT looks
        if devices[device_id]["error_count"]:
            assert devices[device_id]["last_error"], devices[device_id]
