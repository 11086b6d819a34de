"""MQTT over TLS (issue 13, item 3d): the real mosquitto, configured by `clinic-edge broker run`,
has a TLS listener with the node certificate from the county CA and the same per-device accounts;
`mosquitto_pub --cafile` with the county root connects, without it (or with another county's
root) the handshake is refused. Plain MQTT stays on loopback unless [broker] plain_lan opens it."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import Broker, add_device, free_port
from edge.core import config as config_mod
from edge.core.node import Node
from sync.hub import ca as ca_mod
from tls_fixtures import give_node_certificate

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_pub"), reason="needs mosquitto-clients (./run test)")


@pytest.fixture
def tls_broker(env, node, tmp_path):
    county = give_node_certificate(node.data_dir, tmp_path / "county-hub")
    other = ca_mod.load_or_create(tmp_path / "other-county")
    b = Broker(env)
    b.tls_port = free_port()
    b.env["CLINIC_EDGE_BROKER_TLS_LISTEN"] = f"127.0.0.1:{b.tls_port}"
    b.start()
    yield b, county, other
    b.stop()


def _pub(port: int, user: str, password: str, *tls_args: str) -> subprocess.CompletedProcess:
    senml = json.dumps([{"bn": f"urn:dev:{user}:", "n": "8480-6", "u": "mm[Hg]", "v": 128}])
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password, "-q", "1",
                           "-t", f"devices/{user}/readings", "-m", senml, "-i", f"t-{free_port()}", *tls_args],
                          capture_output=True, text=True, timeout=30)


def test_a_device_with_the_county_root_publishes_over_tls_and_one_without_it_is_refused(env, node, tls_broker):
    broker, county, other = tls_broker
    password = add_device(env, "bp-tls", broker=broker)
    ok = _pub(broker.tls_port, "bp-tls", password, "--cafile", str(county.dir / "county-ca.pem"))
    assert ok.returncode == 0, ok.stderr
    wrong_root = _pub(broker.tls_port, "bp-tls", password, "--cafile", str(other.dir / "county-ca.pem"))
    assert wrong_root.returncode != 0
    system_roots = _pub(broker.tls_port, "bp-tls", password, "--capath", "/etc/ssl/certs")
    assert system_roots.returncode != 0
    plain_on_tls_port = _pub(broker.tls_port, "bp-tls", password)
    assert plain_on_tls_port.returncode != 0
    # per-device accounts hold over TLS too: a wrong password is refused
    assert _pub(broker.tls_port, "bp-tls", "not-the-password", "--cafile", str(county.dir / "county-ca.pem")
                ).returncode != 0


def test_plain_mqtt_is_bound_to_loopback_unless_plain_lan_opens_it(env, tmp_path):
    from device_drivers.mqtt import broker as b

    def conf(**extra):
        n = Node(config_mod.load(env={**env, "CLINIC_EDGE_BROKER_LISTEN": "0.0.0.0:1883", **extra}))
        try:
            return b.write_files(n).read_text()
        finally:
            n.close()
    assert "listener 1883 127.0.0.1\n" in conf()
    assert "listener 1883 0.0.0.0\n" in conf(CLINIC_EDGE_BROKER_PLAIN_LAN="true")


def test_doctor_warns_while_plain_mqtt_is_open_to_the_lan(env):
    from conftest import clinic_edge

    def finding(**extra):
        out = clinic_edge({**env, **extra}, "doctor", "--json", check=False).stdout
        return next(f for f in json.loads(out) if f["check"] == "mqtt tls")
    assert finding()["level"] == "ok"
    open_ = finding(CLINIC_EDGE_BROKER_PLAIN_LAN="true")
    assert open_["level"] == "warning" and "unencrypted" in open_["detail"]
