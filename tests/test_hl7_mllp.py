"""HL7 v2 ORU^R01 over MLLP with a real TCP client against the running listener.

Test vectors:
- PCD01: oehf/ipf commons/ihe/hl7v2ws/src/test/java/org/openehealth/ipf/commons/ihe/hl7v2ws/pcd01/
  Pcd01ValidatorTest.java (IHE PCD-01 NIBP 120/80 mmHg, MSH-10 MSGID1234), via docs/devices.md, HL7.
- MONITOR: OBX lines in the style of a Mindray eGateway sample quoted in docs/devices.md, HL7 (SpO2
  150456, pulse 149530, ECG heart rate 147842, vendor code 108^MNDRY_ECG_PAUSE_RATE^99MNDRY, OBX-14
  times); the source repository could not be resolved, so these are [U] as to real Mindray output.
- MLLP framing 0x0B ... 0x1C 0x0D: johnpaulett/python-hl7 tests/test_mllp.py.
"""
from __future__ import annotations

import json
import socket

import pytest

from device_drivers.errors import DriverError
from device_drivers.hl7.driver import MllpDriver
from device_drivers.hl7.mllp import frame

from conftest import clinic_edge, stored_readings as rows, wait_for

PCD01 = ("MSH|^~\\&|AcmeInc^ACDE48234567ABCD^EUI-64||||20090713090030+0500||ORU^R01^ORU_R01|MSGID1234|P|2.6|||NE|AL"
         "|||||IHE PCD ORU-R01 2006^HL7^2.16.840.1.113883.9.n.m^HL7\r"
         "PID|||789567^^^Imaginary Hospital^PI||Doe^John^Joseph^^^^L^A|||M\r"
         "OBR|1|AB12345^AcmeAHDInc^ACDE48234567ABCD^EUI-64|CD12345^AcmeAHDInc^ACDE48234567ABCD^EUI-64"
         "|528391^MDC_DEV_SPEC_PROFILE_BP^MDC|||20090813095715+0500\r"
         "OBX|1||528391^MDC_DEV_SPEC_PROFILE_BP^MDC|1|||||||R|||||||0123456789ABCDEF^EUI-64\r"
         "OBX|2||150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1|||||||R|||20090813095715+0500\r"
         "OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R\r"
         "OBX|4|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.0.1.2|80|266016^MDC_DIM_MMHG^MDC|||||R\r").encode()


def monitor(control_id: str, spo2: int = 98, patient: str = "") -> bytes:
    return ("MSH|^~\\&|MONITOR^MINDRAY||||20260912120000||ORU^R01^ORU_R01|" + control_id + "|P|2.6\r"
            f"PID|||{patient}\r"
            f"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.150456|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||"
            "20260912120000.0000+0530\r"
            "OBX|2|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.3.1.149530|65|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||"
            "20260912120000.0000+0530\r"
            "OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC|1.7.4.147842|66|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||"
            "20260912120000.0000+0530\r"
            "OBX|4|NM|150364^MDC_TEMP_BODY^MDC|1.2.1.150364|37.0|268192^MDC_DIM_DEGC^MDC|||||R|||"
            "20260912120000.0000+0530\r"
            "OBX|5|NM|108^MNDRY_ECG_PAUSE_RATE^99MNDRY|1.7.4.108|0|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||"
            "20260912120000.0000+0530\r").encode()


@pytest.fixture
def listener(node):
    d = MllpDriver(node, {"listen": "127.0.0.1:0", "device_id": "ward-monitor"})
    d.start()
    yield d
    d.stop()
    d.join(5)


def connect(listener) -> socket.socket:
    s = socket.create_connection(listener.address, timeout=5)
    return s


def read_acks(sock: socket.socket, n: int) -> list[list[list[str]]]:
    buf = b""
    while buf.count(b"\x1c\r") < n:
        chunk = sock.recv(65536)
        assert chunk, "the listener closed the connection"
        buf += chunk
    blocks = [b.strip(b"\x0b") for b in buf.split(b"\x1c\r") if b]
    return [[seg.split("|") for seg in b.decode().split("\r") if seg] for b in blocks]


def test_pcd01_blood_pressure_is_committed_before_the_aa(node, env, listener):
    with connect(listener) as s:
        s.sendall(frame(PCD01))
        [ackmsg] = read_acks(s, 1)
        stored_at_ack = rows(node)
    assert ackmsg[0][8] == "ACK^R01^ACK" and ackmsg[1][:3] == ["MSA", "AA", "MSGID1234"]
    assert [(r["code"], r["value"], r["unit"]) for r in stored_at_ack] == [("8462-4", 80, "mm[Hg]"),
                                                                           ("8480-6", 120, "mm[Hg]")]
    assert stored_at_ack[0]["device_time"] == "2009-08-13T04:57:15.000Z"    # OBR-7 with its +0500
    listed = json.loads(clinic_edge(env, "readings", "--json").stdout)
    assert {(r["code"], r["value"], r["device_id"]) for r in listed} == {("8480-6", 120, "ward-monitor"),
                                                                          ("8462-4", 80, "ward-monitor")}


def test_several_messages_on_one_connection_with_obx14_times_and_raw_vendor_codes(node, listener):
    with connect(listener) as s:
        s.sendall(frame(monitor("M1", 98)) + frame(monitor("M2", 97)) + frame(monitor("M3", 96)))
        acks = read_acks(s, 3)
    assert [(a[1][1], a[1][2]) for a in acks] == [("AA", "M1"), ("AA", "M2"), ("AA", "M3")]
    got = rows(node)
    spo2 = sorted(r["value"] for r in got if r["code"] == "2708-6")
    assert spo2 == [96, 97, 98]
    assert sorted(r["value"] for r in got if r["code"] == "8867-4") == [65, 65, 65, 66, 66, 66]
    assert {r["value"] for r in got if r["code"] == "8310-5"} == {37.0}
    vendor = [r for r in got if r["code"] == "108^MNDRY_ECG_PAUSE_RATE^99MNDRY"]
    assert len(vendor) == 3 and {r["status"] for r in vendor} == {"unmapped"}
    assert {r["device_time"] for r in got} == {"2026-09-12T06:30:00.000Z"}   # OBX-14, +0530


def test_a_resent_message_is_stored_once_and_acked_again(node, listener):
    with connect(listener) as s:
        s.sendall(frame(monitor("R1")))
        read_acks(s, 1)
    with connect(listener) as s:
        s.sendall(frame(monitor("R1")))
        [a] = read_acks(s, 1)
    assert a[1][1] == "AA" and len(rows(node)) == 5


def test_malformed_message_gets_ae_with_the_reason_and_the_connection_goes_on(node, env, listener):
    bad = PCD01.replace(b"|120|", b"|12O|")
    with connect(listener) as s:
        s.sendall(frame(bad) + frame(b"ADT^A01 this is not HL7") + frame(monitor("OK1")))
        acks = read_acks(s, 3)
    assert acks[0][1][:3] == ["MSA", "AE", "MSGID1234"] and "not a number" in acks[0][1][3]
    assert acks[1][1][1] == "AE" and "MSH" in acks[1][1][3]
    assert acks[2][1][:3] == ["MSA", "AA", "OK1"]
    assert {r["code"] for r in rows(node)} >= {"2708-6"} and not any(r["code"] == "8480-6" for r in rows(node))
    [dev] = json.loads(clinic_edge(env, "device", "list", "--json").stdout)
    assert "not HL7" not in dev["last_error"] and dev["error_count"] == 2


def test_other_message_types_are_rejected_with_ar(listener):
    adt = b"MSH|^~\\&|HIS||||20260101||ADT^A01|A1|P|2.5\rPID|||1\r"
    with connect(listener) as s:
        s.sendall(frame(adt))
        [a] = read_acks(s, 1)
    assert a[1][:3] == ["MSA", "AR", "A1"] and r"send ORU\S\R01" in a[1][3]   # ^ escaped as \S\ in the text


def test_connection_dropped_mid_message_stores_nothing(node, listener):
    s = connect(listener)
    whole = frame(PCD01)
    s.sendall(whole[: len(whole) // 2])
    s.close()
    wait_for(lambda: listener.stats["dropped_mid_message"] == 1, message="the listener to see the drop")
    assert rows(node) == []
    with connect(listener) as s2:                       # the monitor reconnects and resends
        s2.sendall(whole)
        [a] = read_acks(s2, 1)
    assert a[1][1] == "AA" and len(rows(node)) == 2


def test_pid3_matches_a_resident_by_id_number(node, listener):
    node.store.conn.execute("INSERT INTO residents (id, name, id_number, created_at, updated_at) VALUES"
                            " ('res-9', '李四', '11010519491231002X', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
    with connect(listener) as s:
        s.sendall(frame(monitor("P1", patient="11010519491231002x")) + frame(monitor("P2", patient="999")))
        read_acks(s, 2)
    got = rows(node)
    by_msg = {json.loads(r["meta"])["message_control_id"]: r["resident_id"] for r in got}
    assert by_msg == {"P1": "res-9", "P2": None}      # no match: waits in the inbox


def test_listen_key_is_checked(node):
    with pytest.raises(DriverError, match=r"drivers\.mllp\.listen is required"):
        MllpDriver(node, {})
    with pytest.raises(DriverError, match=r"drivers\.mllp\.listen = '2575'"):
        MllpDriver(node, {"listen": "2575"})
