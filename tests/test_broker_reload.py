"""`clinic-edge device add` against a running node (real mosquitto): it never rewrites the running
broker's listener, and says "broker reloaded" only when the broker really accepts the new device."""
import json
import subprocess
import sys

from tests.conftest import clinic_edge, wait_port


def listener(env) -> str:
    conf = (__import__("pathlib").Path(env["CLINIC_EDGE_DATA"]) / "broker" / "mosquitto.conf").read_text()
    return next(line for line in conf.splitlines() if line.startswith("listener "))


def test_device_add_keeps_the_listener_and_reports_a_real_reload(broker, env):
    before = listener(env)
    assert str(broker.port) in before
    out = clinic_edge(env, "device", "add", "bp-2", "--kind", "bp")   # env without the broker's port
    assert listener(env) == before                                   # the running broker's listener stays
    assert "broker reloaded: the device can log in" in out.stdout
    password = next(line.split()[2] for line in out.stdout.splitlines() if line.startswith("MQTT password"))
    pub = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-u", "bp-2",
                          "-P", password, "-t", "devices/bp-2/readings", "-m", json.dumps([{"n": "sbp", "u":
                          "mm[Hg]", "v": 120}])], capture_output=True, text=True, timeout=10)
    assert pub.returncode == 0, pub.stderr
    broker.restart()                                                 # and it comes back on the same port
    wait_port(broker.port)


def test_no_reloaded_claim_when_no_broker_runs_or_the_pid_is_not_mosquitto(broker, env):
    broker.stop()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = __import__("pathlib").Path(env["CLINIC_EDGE_DATA"]) / "broker" / "mosquitto.pid"
        pid_file.write_text(str(other.pid))                           # a stale pid, reused by another process
        out = clinic_edge(env, "device", "add", "bp-3", "--kind", "bp")
        assert "broker reloaded" not in out.stdout + out.stderr
        assert "broker files written" in out.stdout
        assert other.poll() is None                                   # not signalled
    finally:
        other.kill()
