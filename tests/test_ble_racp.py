"""Record Access Control Point requests and responses, and the Current Time value we write.

Response vectors: NordicSemiconductor/Android-BLE-Common-Library
`ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/RecordAccessControlPointDataCallbackTest.java`.
Request layouts: Nordic `RecordAccessControlPointData.java` / GLS 1.0 §3.6 as in docs/devices.md, characteristic layouts.
Current Time: StanfordSpezi/SpeziBluetooth `CurrentTimeTests.swift` test time (2024-06-06 12:04:44,
Thursday, fractions256 = 128), encoded per CTS 1.1 (bytes computed by us [C]).
"""
from datetime import datetime

import pytest

from device_drivers.ble import racp
from device_drivers.ble.adapter import current_time
from device_drivers.ble.errors import RacpFrameError

H = bytes.fromhex


@pytest.mark.parametrize("frame,op,code,ok,none,error", [
    ("06 00 01 01", 1, 1, True, False, None),                              # Nordic: completed
    ("06 00 01 06", 1, 6, False, True, None),                              # Nordic: no records found
    ("06 00 0C 02", 12, 2, False, False, "op code not supported"),         # Nordic
    ("06 00 01 03", 1, 3, False, False, "invalid operator"),               # Nordic
    ("06 00 02 04", 2, 4, False, False, "operator not supported"),         # Nordic
    ("06 00 01 05", 1, 5, False, False, "invalid operand"),                # Nordic
    ("06 00 03 07", 3, 7, False, False, "abort unsuccessful"),             # Nordic
    ("06 00 02 08", 2, 8, False, False, "procedure not completed"),        # Nordic
    ("06 00 02 09", 2, 9, False, False, "operand not supported"),          # Nordic
    ("06 00 01 0A", 1, 10, False, False, "unknown code 0x0a"),             # Nordic: unknown error code
    ("06 00 03 01", 3, 1, True, False, None),                              # abort done (docs/devices.md, characteristic layouts)
])
def test_response_codes(frame, op, code, ok, none, error):
    r = racp.parse_response(H(frame))
    assert (r.request_op, r.code, r.success, r.no_records) == (op, code, ok, none)
    assert (error in r.error) if error else r.error is None


@pytest.mark.parametrize("frame,count", [("05 00 01", 1), ("05 00 02 01", 258), ("05 00 04 03 02 01", 16909060)])
def test_number_of_records(frame, count):                                  # Nordic uint8/16/32
    assert racp.parse_response(H(frame)).count == count


@pytest.mark.parametrize("frame", ["05 00 03 02 01", "01 01", "01 03 01 02 00", "06 01 01", "06 00 01"])
def test_invalid_responses(frame):                                         # Nordic invalid + [C]
    with pytest.raises(RacpFrameError):
        racp.parse_response(H(frame))


def test_requests():
    assert racp.report_all() == H("01 01")
    assert racp.report_from(258) == H("01 03 01 02 01")                    # sequence >= 258
    assert racp.report_after(None) == H("01 01")                           # nothing stored yet
    assert racp.report_after(41) == H("01 03 01 2A 00")                    # >= last + 1
    assert racp.report_after(0xFFFF) == H("01 01")                         # wrapped: all, dedup by id
    assert racp.count_after(41) == H("04 03 01 2A 00")
    assert racp.report_range(12, 412) == H("01 04 01 0C 00 9C 01")
    assert racp.report_last() == H("01 06")
    assert racp.abort() == H("03 00")


def test_current_time_value():
    assert current_time(datetime(2024, 6, 6, 12, 4, 44, 500000)) == H("E8 07 06 06 0C 04 2C 04 80 00")


def test_date_time_value():
    from device_drivers.ble.adapter import date_time
    assert date_time(datetime(2018, 4, 17, 15, 51, 0)) == H("E2 07 04 11 0F 33 00")   # Nordic DateTime _today
