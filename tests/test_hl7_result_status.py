"""HL7 OBX-11 result status and the MDC codes monitors send, through the real MLLP listener into
a real SQLite store.

Vectors are ours [C], in the IHE PCD-01 layout of tests/test_hl7_mllp.py; the OBX-3 codes and
their meanings are the ones docs/devices.md ("HL7 ORU: MDC codes") cites: MDC_PRESS_CUFF_SYS/_DIA/
_MEAN 150301/150302/150303 (OpenICE's 11073 term codes 19229-19231 in partition 2), MDC_TEMP
150344, MDC_BLD_PULS_RATE_INV 149522, MDC_PULS_RATE_NON_INV 149546 and MDC_RESP_RATE 151562
(HL7 Denmark dk-core valueSets.fsh). OBX-11 values: HL7 v2 table 0085.
"""
from __future__ import annotations

import json
import socket
from datetime import timezone

import pytest

from device_drivers.hl7.driver import MllpDriver
from device_drivers.hl7.mllp import frame
from device_drivers.hl7.oru import parse_oru

from conftest import clinic_edge, clinic_yesterday, stored_readings as rows

DAY = clinic_yesterday().strftime("%Y%m%d")     # not a fixed date: results must not be ahead of the box's clock
WHEN = DAY + "120000+0800"


def oru(control: str, *obx: str) -> bytes:
    head = (f"MSH|^~\\&|MONITOR^0012345678ABCDEF^EUI-64||||{DAY}120005+0800||ORU^R01^ORU_R01|{control}|P|2.6\r"
            "PID|||110105194912310021^^^^PI\r"
            f"OBR|1|||182777000^monitoring of patient^SCT|||{WHEN}\r")
    return (head + "".join(f"OBX|{i}|{line}\r" for i, line in enumerate(obx, 1))).encode()


def nm(code: str, name: str, sub: str, value: str, unit: str, status: str) -> str:
    return f"NM|{code}^{name}^MDC|{sub}|{value}|{unit}|||||{status}|||{WHEN}"


MMHG, BPM, DEGC, RPM = "266016^MDC_DIM_MMHG^MDC", "264864^MDC_DIM_BEAT_PER_MIN^MDC", "268192^MDC_DIM_DEGC^MDC", \
    "264928^MDC_DIM_RESP_PER_MIN^MDC"


@pytest.fixture
def listener(node):
    d = MllpDriver(node, {"listen": "127.0.0.1:0", "device_id": "ward-monitor"})
    d.start()
    yield d
    d.stop()
    d.join(5)


def send(listener, *messages: bytes) -> list[str]:
    """Send the messages on one connection; the MSA-1 codes of the answers."""
    with socket.create_connection(listener.address, timeout=5) as s:
        s.sendall(b"".join(frame(m) for m in messages))
        buf = b""
        while buf.count(b"\x1c\r") < len(messages):
            chunk = s.recv(65536)
            assert chunk, "the listener closed the connection"
            buf += chunk
    return [b.split(b"\rMSA|")[1][:2].decode() for b in buf.split(b"\x1c\r") if b]


def by_code(node) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows(node):
        out.setdefault(r["code"], []).append(r)
    return out


def test_mdc_codes_monitors_send_map_to_loinc():
    msg = oru("MAP1", nm("150301", "MDC_PRESS_CUFF_SYS", "1.1.9.150301", "128", MMHG, "F"),
              nm("150302", "MDC_PRESS_CUFF_DIA", "1.1.9.150302", "82", MMHG, "F"),
              nm("150303", "MDC_PRESS_CUFF_MEAN", "1.1.9.150303", "97", MMHG, "F"),
              nm("150344", "MDC_TEMP", "1.2.1.150344", "36.8", DEGC, "F"),
              nm("149522", "MDC_BLD_PULS_RATE_INV", "1.13.1.149522", "71", BPM, "F"),
              nm("149546", "MDC_PULS_RATE_NON_INV", "1.1.9.149546", "72", BPM, "F"),
              nm("151562", "MDC_RESP_RATE", "1.4.1.151562", "16", RPM, "F"))
    _, readings = parse_oru(msg, device_id="m", tz=timezone.utc)
    assert [(r.code, r.value, r.unit) for r in readings] == [
        ("8480-6", 128, "mm[Hg]"), ("8462-4", 82, "mm[Hg]"), ("8478-0", 97, "mm[Hg]"), ("8310-5", 36.8, "Cel"),
        ("8867-4", 71, "/min"), ("8867-4", 72, "/min"), ("9279-1", 16, "/min")]


def test_respiration_rate_and_mean_pressure_are_stored_valid(node, listener):
    msg = oru("RR1", nm("151562", "MDC_RESP_RATE", "1.4.1.151562", "18", RPM, "R"),
              nm("150303", "MDC_PRESS_CUFF_MEAN", "1.1.9.150303", "95", MMHG, "R"))
    assert send(listener, msg) == ["AA"]
    got = by_code(node)
    assert [(r["value"], r["unit"], r["status"]) for r in got["9279-1"]] == [(18, "/min", "valid")]
    assert [(r["value"], r["status"]) for r in got["8478-0"]] == [(95, "valid")]


def test_wrong_and_cannot_be_obtained_results_are_never_valid(node, env, listener):
    msg = oru("WX1", nm("150301", "MDC_PRESS_CUFF_SYS", "1.1.9.150301", "128", MMHG, "F"),
              nm("150302", "MDC_PRESS_CUFF_DIA", "1.1.9.150302", "31", MMHG, "W"),
              nm("151562", "MDC_RESP_RATE", "1.4.1.151562", "0", RPM, "X"),
              "|69855^MDC_DEV_METER_PRESS_BLD_CHAN^MDC|1.13.2.0|||||||X")    # a container marked X
    assert send(listener, msg) == ["AA"]
    got = by_code(node)
    assert [(r["value"], r["status"]) for r in got["8480-6"]] == [(128, "valid")]
    [wrong] = got["8462-4"]
    assert (wrong["value"], wrong["status"]) == (None, "rejected") and "marked this result wrong" in wrong["reason"]
    [missing] = got["9279-1"]
    assert (missing["value"], missing["status"]) == (None, "rejected") and "cannot be obtained" in missing["reason"]
    assert set(got) == {"8480-6", "8462-4", "9279-1"}                     # the container is no reading
    listed = json.loads(clinic_edge(env, "readings", "--json").stdout)
    assert {(r["code"], r["status"]) for r in listed} == {("8480-6", "valid"), ("8462-4", "rejected"),
                                                          ("9279-1", "rejected")}


def test_a_correction_supersedes_the_earlier_result(node, env, listener):
    first = oru("C1", nm("150301", "MDC_PRESS_CUFF_SYS", "1.1.9.150301", "182", MMHG, "F"),
                nm("150302", "MDC_PRESS_CUFF_DIA", "1.1.9.150302", "82", MMHG, "F"))
    correction = oru("C2", nm("150301", "MDC_PRESS_CUFF_SYS", "1.1.9.150301", "128", MMHG, "C"))
    assert send(listener, first, correction) == ["AA", "AA"]
    sys = sorted(by_code(node)["8480-6"], key=lambda r: r["value"])
    new, old = sys
    assert (new["value"], new["status"], new["superseded_by"]) == (128, "valid", None)
    assert (old["value"], old["status"], old["superseded_by"]) == (182, "voided", new["id"])
    assert old["status_before_void"] == "valid" and "corrected by the device" in old["void_reason"]
    assert [(r["value"], r["status"]) for r in by_code(node)["8462-4"]] == [(82, "valid")]   # not corrected
    listed = json.loads(clinic_edge(env, "readings", "--json").stdout)
    assert {(r["value"], r["status"]) for r in listed if r["code"] == "8480-6"} == {(128, "valid"), (182, "voided")}
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE record_id = ?", (old["id"],)) == 2  # hub learns it
    assert node.store.scalar("SELECT count(*) FROM audit WHERE action = 'reading.supersede' AND entity_id = ?",
                             (old["id"],)) == 1


def test_a_result_posted_as_wrong_voids_the_earlier_one(node, listener):
    first = oru("W1", nm("150344", "MDC_TEMP", "1.2.1.150344", "39.9", DEGC, "F"))
    wrong = oru("W2", nm("150344", "MDC_TEMP", "1.2.1.150344", "39.9", DEGC, "W"))
    assert send(listener, first, wrong) == ["AA", "AA"]
    temps = by_code(node)["8310-5"]
    assert sorted(r["status"] for r in temps) == ["rejected", "voided"]
    assert not any(r["status"] == "valid" for r in temps)


def test_a_correction_of_another_patient_or_sub_id_touches_nothing(node, listener):
    first = oru("S1", nm("150301", "MDC_PRESS_CUFF_SYS", "1.1.9.150301", "140", MMHG, "F"))
    other = oru("S2", nm("150301", "MDC_PRESS_CUFF_SYS", "1.1.9.150302", "128", MMHG, "C"))   # other OBX-4
    assert send(listener, first, other) == ["AA", "AA"]
    assert sorted((r["value"], r["status"]) for r in by_code(node)["8480-6"]) == [(128, "valid"), (140, "valid")]
