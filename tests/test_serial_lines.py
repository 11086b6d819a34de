"""Line devices over a real pseudo-terminal, driven by the shipped profiles.

The line formats are the generic ones documented in each profile file (device_drivers/lines/
profiles/*.toml, marked [U] there: no manufacturer capture was available to cite).
"""
from __future__ import annotations

import json
import os

import pytest

from device_drivers.errors import DriverError
from device_drivers.lines.driver import LineDriver
from device_drivers.lines.profile import ProfileError, available, from_dict, load
from serial_fixtures import PlugPort

from conftest import clinic_edge, stored_readings as rows, wait_for


@pytest.fixture
def port(tmp_path):
    p = PlugPort(tmp_path / "ttyPRINTER")
    p.plug()
    yield p
    p.close()


def start(node, port, profile: str) -> LineDriver:
    d = LineDriver(node, {"url": str(port.path), "profile": profile, "device_id": "bp-printer"})
    d.start()
    wait_for(lambda: d.port_open, 5, message="the port to open")
    return d


def test_bp_profile_lines_become_readings_listed_by_the_cli(node, env, port):
    d = start(node, port, "bp-sys-dia-pul")
    try:
        os.write(port.master, b"-------\r\nSYS=128,DIA=82,PR=71,ID=110105194912310021,2026-03-01 09:12\r\n")
        wait_for(lambda: len(rows(node)) == 3, message="three readings")
        os.write(port.master, b"garbled ### line\r\n")
        wait_for(lambda: d.stats["unreadable_lines"] == 1, message="the bad line to be counted")
    finally:
        d.stop()
        d.join(5)
    listed = json.loads(clinic_edge(env, "readings", "--json").stdout)
    assert sorted((r["code"], r["value"], r["unit"]) for r in listed) == [
        ("8462-4", 82, "mm[Hg]"), ("8480-6", 128, "mm[Hg]"), ("8867-4", 71, "/min")]
    assert {json.loads(r["meta"])["patient_id"] for r in rows(node)} == {"110105194912310021"}
    [dev] = json.loads(clinic_edge(env, "device", "list", "--json").stdout)
    assert dev["kind"] == "bp" and "garbled" in dev["last_error"]


def test_scale_profile_ignores_unstable_weights_and_survives_unplugging(node, port):
    d = start(node, port, "weighing-indicator-st-gs")
    try:
        os.write(port.master, b"US,GS,+0065.10kg\r\nUS,GS,+0065.38kg\r\nST,GS,+0065.40kg\r\nST,GS,+00")
        wait_for(lambda: len(rows(node)) == 1, message="the stable weight")
        port.unplug()                                     # the half line is lost with the adapter
        wait_for(lambda: not d.port_open, message="the unplug to be noticed")
        master = port.plug()
        wait_for(lambda: d.port_open, 5, message="the port to come back")
        os.write(master, b"ST,+00072.15  kg\r\n")
        wait_for(lambda: len(rows(node)) == 2, message="the next weight after replugging")
    finally:
        d.stop()
        d.join(5)
    assert sorted(r["value"] for r in rows(node)) == [65.4, 72.2]   # canonical kg, 1 decimal
    assert d.stats["lines_cut_by_unplug"] == 1


def test_a_new_model_is_a_new_profile_file(node, tmp_path, port):
    custom = tmp_path / "thermo.toml"
    custom.write_text('[profile]\nname = "Thermometer T=36.8C"\nkind = "thermometer"\n'
                      "[[line]]\npattern = '^T=(?P<t>\\d+\\.\\d)C$'\nvalues.t = { code = \"8310-5\", unit = \"Cel\" }\n")
    d = LineDriver(node, {"url": str(port.path), "profile": str(custom), "device_id": "thermo"})
    d.start()
    try:
        wait_for(lambda: d.port_open, 5, message="the port to open")
        os.write(port.master, b"T=36.8C\n")
        wait_for(lambda: rows(node), message="the temperature")
    finally:
        d.stop()
        d.join(5)
    assert [(r["code"], r["value"]) for r in rows(node)] == [("8310-5", 36.8)]


def test_shipped_profiles_load_and_bad_ones_name_the_key(node):
    assert {"bp-sys-dia-pul", "weighing-indicator-st-gs", "glucose-meter-line"} <= set(available())
    for name in available():          # a profile file added to profiles/ is checked here too
        assert load(name).patterns
    with pytest.raises(ProfileError, match=r"line\[0\]\.values\.x names a group"):
        from_dict({"line": [{"pattern": "(?P<y>1)", "values": {"x": {"code": "8480-6", "unit": "mm[Hg]"}}}]})
    with pytest.raises(DriverError, match=r"line profile 'nope' not found; shipped profiles: bp-sys-dia-pul"):
        LineDriver(node, {"url": "/dev/null", "profile": "nope"})
    with pytest.raises(DriverError, match=r"drivers\.lines\.profile is required"):
        LineDriver(node, {"url": "/dev/null"})


@pytest.mark.parametrize("value, message", [
    ({"code": "59408-5", "unit": "%"},
     r"line\[0\]\.values\.x\.code '59408-5' is not a code clinic-edge knows \(edge/core/codes\.py\): one of 8480-6"),
    ({"code": "2708-6", "unit": "mmHg"},
     r"line\[0\]\.values\.x\.unit 'mmHg' is not a unit of 2708-6 \(SpO2\); one of %$"),
])
def test_a_profile_with_a_code_or_unit_ingest_cannot_read_is_refused_when_loaded(value, message):
    """Else every reading of the device would be stored "unmapped" or rejected, unseen until a
    doctor misses the values: the profile is refused at start, naming the key."""
    with pytest.raises(ProfileError, match=message):
        from_dict({"line": [{"pattern": "(?P<x>\\d+)", "values": {"x": value}}]})
