"""The ECG machine's conclusion over HL7 (ORU^R01 OBX 8601-7^EKG IMPRESSION^LN) fills the
健康体检表's 心电图 with its source, matched to the resident by the ID number in PID-3 as lab
results are. Real MLLP over TCP against the running listener, as tests/test_hl7_mllp.py.

Message layout: the ECG report of HL7 v2 chapter 7 (observation reporting) examples, which report
the interpretation as `OBX|n|ST|8601-7^EKG IMPRESSION^LN||<text>` under an OBR for 93000^EKG^CPT4
(docs/health-check.md, "ECG conclusion"); OBX-8 is the abnormal flag of HL7 table 0078 (N normal,
A abnormal). The Chinese conclusions are in the style of the printouts of Chinese 12-lead ECG
machines [U]: no vendor's interface manual was found.
"""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

import pytest

from device_drivers.hl7.driver import MllpDriver
from device_drivers.hl7.mllp import frame
from device_drivers.hl7.oru import ecg_value
from edge.core.healthcheck import prefill, records

from conftest import clinic_yesterday, stored_readings as rows
from tests.test_hl7_mllp import connect, read_acks


BEIJING = timezone(timedelta(hours=8))
CHECK_DAY = clinic_yesterday()        # not a fixed date: the results must not be ahead of the box's clock
STAMP = CHECK_DAY.strftime("%Y%m%d")


def on_check_day(hour: int, minute: int) -> datetime:
    """A moment of the check day, Beijing time."""
    return datetime.combine(CHECK_DAY, time(hour, minute), BEIJING)


def ecg(control_id: str, id_number: str, vtype: str, text: str, flag: str = "", status: str = "F") -> bytes:
    return (f"MSH|^~\\&|ECG-1200^CARDIO||CLINIC||{STAMP}091500+0800||ORU^R01^ORU_R01|" + control_id + "|P|2.5\r"
            f"PID|1||{id_number}^^^^ID||赵^一\r"
            "OBR|1||E" + control_id + f"|93000^EKG REPORT^CPT4|||{STAMP}091000+0800||||||||||||||||||F\r"
            f"OBX|1|NM|8867-4^Heart rate^LN||76|/min^^UCUM|60-100|N|||F|||{STAMP}091000+0800\r"
            f"OBX|2|{vtype}|8601-7^EKG IMPRESSION^LN||{text}|||{flag}|||{status}|||{STAMP}091000+0800\r").encode()


@pytest.fixture
def listener(node):
    d = MllpDriver(node, {"listen": "127.0.0.1:0", "device_id": "ecg-cart"})
    d.start()
    yield d
    d.stop()
    d.join(5)


def resident(node, rid, name, id_number):
    node.store.conn.execute("INSERT INTO residents (id, name, id_number, birth_date, created_at, updated_at)"
                            " VALUES (?, ?, ?, '1949-12-31', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                            (rid, name, id_number))


def test_ecg_conclusion_fills_the_form_with_its_source_for_the_resident_of_the_id_number(node, listener):
    resident(node, "res-a", "赵一", "11010519491231002X")
    resident(node, "res-b", "钱二", "110105195001010012")
    with connect(listener) as s:
        s.sendall(frame(ecg("E1", "11010519491231002x", "FT", "窦性心律\\.br\\ST-T改变\\.br\\左心室高电压", "A"))
                  + frame(ecg("E2", "110105195001010012", "ST", "窦性心律 正常心电图")))
        acks = read_acks(s, 2)
    assert [(a[1][1], a[1][2]) for a in acks] == [("AA", "E1"), ("AA", "E2")]
    got = {json.loads(r["meta"])["message_control_id"]: r for r in rows(node) if r["code"] == "8601-7"}
    assert (got["E1"]["resident_id"], got["E1"]["value"], got["E1"]["status"]) == ("res-a", 2, "valid")
    assert (got["E2"]["resident_id"], got["E2"]["value"]) == ("res-b", 1)
    assert json.loads(got["E1"]["meta"])["ecg_conclusion"] == "窦性心律；ST-T改变；左心室高电压"

    a = prefill.build(node.store, resident_id="res-a", today=CHECK_DAY, tz="Asia/Shanghai")
    assert (a.values["ecg"], a.values["ecg_detail"]) == ("2", "窦性心律；ST-T改变；左心室高电压")
    assert a.sources["ecg"] == got["E1"]["id"] and a.readings["ecg"]["device_id"] == "ecg-cart"
    b = prefill.build(node.store, resident_id="res-b", today=CHECK_DAY, tz="Asia/Shanghai")
    assert b.values["ecg"] == "1" and "ecg_detail" not in b.values and b.sources["ecg"] == got["E2"]["id"]

    saved = records.save(node.store, resident_id="res-a", values=a.values, sources=a.sources, actor="doc",
                         at=on_check_day(10, 0))
    assert saved.sources["ecg"] == got["E1"]["id"]
    retyped = records.save(node.store, resident_id="res-a", values={**a.values, "ecg": "1"}, sources=a.sources,
                           actor="doc", at=on_check_day(10, 1))
    assert "ecg" not in retyped.sources              # the doctor overruled the machine: typed


def test_an_ecg_result_not_final_gives_no_value(node, listener):
    resident(node, "res-a", "赵一", "11010519491231002X")
    with connect(listener) as s:
        s.sendall(frame(ecg("E3", "11010519491231002X", "ST", "窦性心律 正常心电图", status="X")))
        read_acks(s, 1)
    [r] = [r for r in rows(node) if r["code"] == "8601-7"]
    assert r["value"] is None and r["status"] == "rejected"
    a = prefill.build(node.store, resident_id="res-a", today=CHECK_DAY, tz="Asia/Shanghai")
    assert "ecg" not in a.values


@pytest.mark.parametrize("text, flag, value", [
    ("正常心电图", "", 1), ("窦性心律 正常心电图", "", 1), ("Normal ECG", "", 1), ("大致正常心电图", "", 2),
    ("窦性心动过缓", "", 2), ("异常心电图", "", 2), ("正常心电图", "A", 2), ("窦性心动过缓", "N", 1),
    ("Borderline ECG, normal ECG otherwise", "", 2)])
def test_normal_only_when_flag_or_text_says_so(text, flag, value):
    assert ecg_value(text, flag) == value
