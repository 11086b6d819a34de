"""The township's laboratory panels fill the 健康体检表's 辅助检查: blood routine, liver and kidney
function, lipids, HbA1c and fasting glucose, over ASTM on a real pty and HL7 ORU over real MLLP,
matched to the resident by the ID number the analyser sends, mapped by LOINC code and normalised to
the form's units (g/L, 10^9/L, U/L, umol/L, mmol/L, %), each with its analyser and time.

Sample messages:
- SYSMEX: senaite/senaite.astm src/senaite/astm/tests/data/sysmex_xp100.txt (Sysmex XP-100 blood
  count: WBC 10*3/uL, HGB g/dL, PLT 10*3/uL). The R records verbatim (first ten); a P record with the
  resident's ID number is added, as the township's host sends it.
- In all of them the dates are moved to the day before the suite runs (RESULT_DAY): ingest believes
  a device time only when it is after 2024 and not ahead of the box's clock (docs/time.md), and the
  reuse window is counted from the result's time.
- COBAS: senaite/senaite.astm src/senaite/astm/tests/data/cobas_c311.txt (Roche cobas c311 chemistry:
  U/l, umol/l, mmol/l). R records verbatim; P record added and the header time set (the sample has
  none). What each application number is (685 ALT, 687 AST, 712 total and 735 direct bilirubin,
  690 creatinine, 717 glucose) is this test's configuration, not checked in Roche's list [U].
- HEMOSCREEN: senaite/senaite.astm src/senaite/astm/tests/data/hl7/hemoscreen_fresh_blood.hl7
  (PixCell HemoScreen ORU^R01 with its own OBX-3 codes); PID-3 holds the ID number instead of 35.
- The LOINC-coded chemistry ORU follows the HL7 v2.5.1 lab results layout (OBX-3 code^text^LN,
  OBX-6 UCUM), written here; no Chinese analyser's own message was found [U].
"""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

import pytest

from device_drivers.astm.driver import AstmDriver
from device_drivers.astm.simulator import Analyser
from device_drivers.hl7.driver import MllpDriver
from device_drivers.hl7.mllp import frame
from edge.core import codes
from edge.core.healthcheck import prefill, records
from edge.core.healthcheck.validation import validate
from serial_fixtures import FakeMonotonic, PlugPort

from conftest import clinic_yesterday, stored_readings, wait_for
from tests.test_hl7_mllp import connect, read_acks

TZ = "Asia/Shanghai"
RESULT_DAY = clinic_yesterday()          # the day the analysers' results are dated, the check the day after
STAMP = RESULT_DAY.strftime("%Y%m%d")
ZHAO, QIAN = "11010519491231002X", "110105195001010012"

SYSMEX = (b"H|\\^&|||XP-100^00-13^^^^A7869^BS649542||||||||E1394-97P|1\r"
          b"P|1||" + ZHAO.encode() + b"\r"
          b"O|1||^^            113^A|^^^^WBC\\^^^^RBC\\^^^^HGB\\^^^^PLT|||||||N||||||||||||||F\r"
          b"R|1|^^^^WBC^1|  5.5|10*3/uL||N||||               ||20261120092452\r"
          b"R|2|^^^^RBC^1| 2.87|10*6/uL||N||||               ||20261120092452\r"
          b"R|3|^^^^HGB^1| 10.1|g/dL||N||||               ||20261120092452\r"
          b"R|4|^^^^HCT^1| 24.2|%||L||||               ||20261120092452\r"
          b"R|8|^^^^PLT^1|  170|10*3/uL||N||||               ||20261120092452\r"
          b"L|1|N\r").replace(b"20261120", STAMP.encode())
COBAS = (b"H|\\^&|||c311^1|||||host|RSUPL^REAL|P|1|20261120160000\r"
         b"P|1||" + ZHAO.encode() + b"\r"
         b"O|1|11625^CL-PL-24-0370         ^1^^004|R1|^^^685/\\^^^687/|R||||||N||^^||SC\r"
         b"R|1|^^^685/|22.4|U/l||A||F|||||P1\rC|1|I|43|I\r"
         b"R|2|^^^687/|15.0|U/l||N||F|||||P1\rC|1|I|0|I\r"
         b"R|3|^^^712/|4.1|umol/l||L||F|||||P1\rC|1|I|0|I\r"
         b"R|4|^^^158/|301|U/l||N||F|||||P1\rC|1|I|0|I\r"
         b"R|5|^^^735/|1.6|umol/l||N||F|||||P1\rC|1|I|0|I\r"
         b"R|6|^^^717/|5.85|mmol/l||N||F|||||P1\rC|1|I|0|I\r"
         b"R|7|^^^690/|34|umol/l||A||F|||||P1\rC|1|I|43|I\r"
         b"L|1|N\r").replace(b"20261120", STAMP.encode())
CODES = {"WBC": "6690-2", "HGB": "718-7", "PLT": "777-3", "685/": "1742-6", "687/": "1920-8", "712/": "1975-2",
         "735/": "1968-7", "690/": "2160-0", "717/": "1558-6"}


def resident(node, rid, name, id_number):
    node.store.conn.execute("INSERT INTO residents (id, name, id_number, birth_date, created_at, updated_at)"
                            " VALUES (?, ?, ?, '1949-12-31', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                            (rid, name, id_number))


@pytest.fixture
def astm(node, tmp_path):
    port = PlugPort(tmp_path / "ttyLAB")
    port.plug()
    d = AstmDriver(node, {"url": str(port.path), "device_id": "township-lab", "codes": CODES},
                   monotonic=FakeMonotonic())
    d.start()
    wait_for(lambda: d.port_open, 5, message="the driver to open the pty")
    yield port
    d.stop()
    d.join(5)
    port.close()


def test_astm_blood_count_and_chemistry_fill_the_form_in_its_units_with_their_source(node, astm):
    resident(node, "res-a", "赵一", ZHAO)
    resident(node, "res-b", "钱二", QIAN)
    analyser = Analyser(astm.master)
    assert analyser.transmit(SYSMEX) and analyser.transmit(COBAS)
    a = prefill.build(node.store, resident_id="res-a", today=RESULT_DAY + timedelta(days=1), tz=TZ)
    labs = {k: a.values[k] for k in ("hb", "wbc", "plt", "alt", "ast", "tbil", "dbil", "creatinine", "fbg")}
    assert labs == {"hb": 101, "wbc": 5.5, "plt": 170, "alt": 22, "ast": 15, "tbil": 4.1, "dbil": 1.6,
                    "creatinine": 34, "fbg": 5.8}
    assert {a.readings[k]["device_id"] for k in labs} == {"township-lab"}
    assert a.readings["hb"]["transport"] == "astm" and a.readings["hb"]["effective_time"] == f"{RESULT_DAY}T01:24:52.000Z"
    assert prefill.build(node.store, resident_id="res-b", today=RESULT_DAY + timedelta(days=1), tz=TZ).values.keys() == {"check_date"}

    v = validate({k: str(x) for k, x in a.values.items()}, today=RESULT_DAY + timedelta(days=1))
    assert v.ok, v.errors
    saved = records.save(node.store, resident_id="res-a", values=v.values, sources=a.sources, actor="doc",
                         at=datetime.combine(RESULT_DAY + timedelta(days=1), time(2, 0), timezone.utc))
    assert set(saved.sources) == set(labs)
    out = json.loads(node.store.one("SELECT payload FROM outbox WHERE record_id = ?", (saved.id,))["payload"])
    assert out["values"]["hb"] == 101 and out["sources"]["creatinine"] == a.sources["creatinine"]


def test_lab_results_from_the_past_months_are_reused_and_older_or_later_ones_are_not(node, astm):
    resident(node, "res-a", "赵一", ZHAO)
    assert Analyser(astm.master).transmit(SYSMEX)               # RESULT_DAY
    assert prefill.build(node.store, resident_id="res-a", today=RESULT_DAY + timedelta(days=90), tz=TZ).values["hb"] == 101
    assert "hb" not in prefill.build(node.store, resident_id="res-a", today=RESULT_DAY + timedelta(days=91), tz=TZ).values
    assert "hb" not in prefill.build(node.store, resident_id="res-a", today=RESULT_DAY - timedelta(days=1), tz=TZ).values


HEMOSCREEN = ("MSH|^~\\&|HemoScreen|PixCell|||20261120174110||ORU^R01|0|P|2.4\r"
              f"PID|||{QIAN}\r"
              "OBR||||OBS|||20261120111800\r"
              "OBX|0|NM|WBC||11.7|10*3/uL|||||F|||20261120111800|0000000-0001-HS\r"
              "OBX|2|NM|HGB||14.25|g/dL|||||F|||20261120111800|0000000-0001-HS\r"
              "OBX|8|NM|PLT||120|10*3/uL|||||F|||20261120111800|0000000-0001-HS\r").replace("20261120", STAMP).encode()
CHEMISTRY = ("MSH|^~\\&|BS-240^TOWNSHIP||CLINIC||20261120120000+0800||ORU^R01^ORU_R01|C1|P|2.5.1\r"
             f"PID|1||{QIAN}^^^^ID||钱^二\r"
             "OBR|1||S1|24362-6^Chemistry panel^LN|||20261120113000+0800||||||||||||||||||F\r"
             "OBX|1|NM|2093-3^Cholesterol^LN||201|mg/dL^^UCUM|||||F\r"
             "OBX|2|NM|2571-8^Triglyceride^LN||1.69|mmol/L^^UCUM|||||F\r"
             "OBX|3|NM|2089-1^Cholesterol in LDL^LN||3.1|mmol/L^^UCUM|||||F\r"
             "OBX|4|NM|2085-9^Cholesterol in HDL^LN||1.2|mmol/L^^UCUM|||||F\r"
             "OBX|5|NM|2160-0^Creatinine^LN||1.0|mg/dL^^UCUM|||||F\r"
             "OBX|6|NM|22664-7^Urea^LN||5.3|mmol/L^^UCUM|||||F\r"
             "OBX|7|NM|2823-3^Potassium^LN||4.12|mmol/L^^UCUM|||||F\r"
             "OBX|8|NM|2951-2^Sodium^LN||140|mmol/L^^UCUM|||||F\r"
             "OBX|9|NM|1751-7^Albumin^LN||4.2|g/dL^^UCUM|||||F\r"
             "OBX|10|NM|4548-4^Hemoglobin A1c^LN||48|mmol/mol^^UCUM|||||F\r").replace("20261120", STAMP).encode()


def test_hl7_results_by_loinc_or_by_the_analysers_own_codes_fill_the_form(node):
    resident(node, "res-b", "钱二", QIAN)
    d = MllpDriver(node, {"listen": "127.0.0.1:0", "device_id": "township-hl7",
                          "codes": {"WBC": "6690-2", "HGB": "718-7", "PLT": "777-3"}})
    d.start()
    try:
        with connect(d) as s:
            s.sendall(frame(HEMOSCREEN) + frame(CHEMISTRY))
            assert [a[1][1] for a in read_acks(s, 2)] == ["AA", "AA"]
    finally:
        d.stop()
        d.join(5)
    b = prefill.build(node.store, resident_id="res-b", today=RESULT_DAY, tz=TZ)
    got = {k: b.values[k] for k in ("hb", "wbc", "plt", "tc", "tg", "ldl", "hdl", "creatinine", "urea",
                                    "potassium", "sodium", "albumin", "hba1c")}
    assert got == {"hb": 142, "wbc": 11.7, "plt": 120, "tc": 5.2, "tg": 1.69, "ldl": 3.1, "hdl": 1.2,
                   "creatinine": 88, "urea": 5.3, "potassium": 4.1, "sodium": 140, "albumin": 42.0, "hba1c": 6.5}
    assert {b.readings[k]["device_id"] for k in got} == {"township-hl7"}
    assert not [r for r in stored_readings(node) if r["status"] == "unmapped" and r["code"] in ("WBC", "HGB", "PLT")]


@pytest.mark.parametrize("code, value, unit, canonical", [
    ("718-7", 13.5, "g/dL", 135), ("6690-2", 6.2, "10^9/L", 6.2), ("777-3", 250, "K/uL", 250),
    ("1742-6", 0.5, "ukat/L", 30), ("1975-2", 1.0, "mg/dL", 17.1), ("2160-0", 1.2, "mg/dL", 106),
    ("22664-7", 30, "mg/dL", 5.0), ("2093-3", 193.35, "mg/dL", 5.0), ("2571-8", 177.14, "mg/dL", 2.0),
    ("4548-4", 53, "mmol/mol", 7.0), ("1558-6", 90.08, "mg/dL", 5.0), ("1751-7", 40, "g/L", 40),
])
def test_lab_units_are_normalised_to_the_forms(code, value, unit, canonical):
    assert codes.lookup(code).to_canonical(value, unit) == canonical


def test_a_lab_unit_that_cannot_be_converted_is_refused_with_the_allowed_ones():
    with pytest.raises(codes.UnitError, match=r"unit 'mg/L' is not valid for 2160-0 \(Creatinine\); allowed: .*umol/L"):
        codes.lookup("2160-0").to_canonical(1.0, "mg/L")


BUN = ("MSH|^~\\&|BS-240^TOWNSHIP||CLINIC||" + STAMP + "120000+0800||ORU^R01^ORU_R01|C2|P|2.5.1\r"
       f"PID|1||{QIAN}^^^^ID||钱^二\r"
       "OBR|1||S2|24362-6^Chemistry panel^LN|||" + STAMP + "113000+0800||||||||||||||||||F\r"
       "OBX|1|NM|3094-0^Urea nitrogen^LN||14|mg/dL^^UCUM|||||F\r").encode()


def test_a_urea_nitrogen_result_fills_the_forms_urea_converted_and_keeps_its_source(node):
    """BUN 14 mg/dL is urea 14 × 0.357 = 5.0 mmol/L (docs/health-check.md, "BUN"); the reading stays as sent."""
    resident(node, "res-b", "钱二", QIAN)
    d = MllpDriver(node, {"listen": "127.0.0.1:0", "device_id": "township-hl7"})
    d.start()
    try:
        with connect(d) as s:
            s.sendall(frame(BUN))
            assert [a[1][1] for a in read_acks(s, 1)] == ["AA"]
    finally:
        d.stop()
        d.join(5)
    stored = [r for r in stored_readings(node) if r["code"] == "3094-0"]
    assert [(r["status"], r["value"], r["unit"]) for r in stored] == [("valid", 14, "mg/dL")]
    b = prefill.build(node.store, resident_id="res-b", today=RESULT_DAY, tz=TZ)
    assert b.values["urea"] == 5.0 and b.readings["urea"]["code"] == "3094-0"
    v = validate({k: str(x) for k, x in b.values.items()}, today=RESULT_DAY)
    assert v.ok, v.errors
    saved = records.save(node.store, resident_id="res-b", values=v.values, sources=b.sources, actor="doc",
                         at=datetime.combine(RESULT_DAY, time(6, 0), timezone.utc))
    assert saved.sources == {"urea": stored[0]["id"]}                 # the converted value still is the reading's
    retyped = records.save(node.store, resident_id="res-b", values={**v.values, "urea": 14.0}, sources=b.sources,
                           actor="doc", at=datetime.combine(RESULT_DAY, time(6, 1), timezone.utc))
    assert retyped.sources == {}                                      # 14 "mmol/L" is not the reading's value


@pytest.mark.parametrize("value, unit, urea", [(14, "mg/dL", 5.0), (28.0, "mg/dL", 10.0), (5.0, "mmol/L", 5.0)])
def test_urea_nitrogen_converts_to_the_forms_urea(value, unit, urea):
    bun = codes.lookup("3094-0").to_canonical(value, unit)
    assert records.shown("urea", bun, "3094-0") == urea
