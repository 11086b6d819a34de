"""E1394 records -> readings. Vectors: senaite/senaite.astm src/senaite/astm/tests/data/
abbott_afinion2.txt (Afinion 2 HbA1c) and cobas_c111.txt (Roche cobas c111: test id ^^^687,
U/L, flag N, completed 20230414105626); the custom-delimiter and escape cases are ours."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from device_drivers.astm.codec import AstmFrameError
from device_drivers.astm.results import Context, code_map, readings_from_message

SHANGHAI = ZoneInfo("Asia/Shanghai")
C111 = (b"H|\\^&|||c111ELREMC^Roche^c111^4.2.2.1730^1^13147|||||host|RSUPL^REAL|P|1|20230414105700\r"
        b"P|1||\rO|1||BMM 371 CONTROLE^^3||S||||||N|||||||||||20230414105700|||F\r"
        b"R|1|^^^687|28.6|U/L||N||F||LABO||20230414105626\rL|1|N\r")


def read(text: bytes, codes=None, ctx=None):
    return readings_from_message(text, ctx or Context(), device_id="a", codes=code_map(codes or {}), tz=SHANGHAI)


def test_cobas_c111_result_with_flag_unit_and_completion_time():
    [r], _ = read(C111, {"687": {"code": "1920-8", "unit": "U/L"}})
    assert (r.code, r.value, r.unit) == ("1920-8", 28.6, "U/L")
    assert r.meta["abnormal_flag"] == "N" and r.meta["sample_id"] == "BMM 371 CONTROLE"
    assert r.device_time == datetime(2023, 4, 14, 10, 56, 26, tzinfo=SHANGHAI)
    assert r.meta["analyser"].startswith("c111ELREMC^Roche")


def test_unmapped_test_keeps_its_raw_test_id():
    [r], _ = read(C111)
    assert r.code == "^^^687" and r.unit == "U/L"


def test_delimiters_declared_in_the_header_are_honoured():
    text = b"H#@~$\rP#1##PAT@42\rR#1#~~~HbA1c#6.1#%####F####20260301090000\rL#1#N\r"
    [r], _ = read(text, {"hba1c": "4548-4"})            # the map is matched case-insensitively too
    assert (r.code, r.value, r.meta["patient_id"]) == ("4548-4", 6.1, "PAT")


def test_escape_sequences_and_context_across_messages():
    _, ctx = read(b"H|\\^&\rP|1|ID&F&1\rO|1|S1\r")
    [r], ctx2 = read(b"R|1|^^^GLU|5.4|mmol/L\r", {"GLU": "2339-0"}, ctx)   # one record per message
    assert r.meta["patient_id"] == "ID|1" and r.meta["sample_id"] == "S1" and r.code == "2339-0"
    _, ctx3 = read(b"L|1|N\r", ctx=ctx2)
    assert ctx3.patient_id == ""


def test_non_numeric_result_is_kept_with_the_reason():
    [r], _ = read(b"H|\\^&\rR|1|^^^HbA1c|>14.0|%||H\rL|1\r", {"HbA1c": "4548-4"})
    assert r.value is None and "not a number" in r.no_value_reason and r.meta["value_as_text"] == ">14.0"


def test_qc_results_are_marked():
    [r], _ = read(b"H|\\^&|||x|||||||Q|1|20260101\rR|1|^^^HbA1c|5.5|%\rL|1\r")
    assert r.meta["qc"] is True


@pytest.mark.parametrize("text, reason", [
    (b"H|\\^&\rR|1||5.9|%\r", "no test id"),
    (b"Z|1|x\r", "unknown type"),
    (b"H||||\r", "unusable delimiters"),
    (b"H|\r", "must start with H and declare"),
])
def test_unreadable_records_say_why(text, reason):
    with pytest.raises(AstmFrameError, match=reason):
        read(text)
