"""Record Access Control Point (0x2A52): requests we write, indications the meter answers.

Op codes: 0x01 report stored records, 0x02 delete, 0x03 abort, 0x04 report number of records,
0x05 number-of-records response, 0x06 response code. Operators: 0x00 null, 0x01 all, 0x02 <=,
0x03 >=, 0x04 within range, 0x05 first, 0x06 last. Filter type 0x01 = sequence number (uint16).
Response values: 0x01 success, 0x02 op code not supported, 0x03 invalid operator, 0x04 operator
not supported, 0x05 invalid operand, 0x06 no records found, 0x07 abort unsuccessful,
0x08 procedure not completed, 0x09 operand not supported.
Sources: NordicSemiconductor/Android-BLE-Common-Library `RecordAccessControlPointData.java` and its
test; GLS 1.0 §3.6 (summarised in docs/devices.md, characteristic layouts).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import RacpFrameError

REPORT, DELETE, ABORT, REPORT_NUMBER, NUMBER_RESPONSE, RESPONSE_CODE = 1, 2, 3, 4, 5, 6
NULL, ALL, LESS_OR_EQUAL, GREATER_OR_EQUAL, WITHIN_RANGE, FIRST, LAST = range(7)
FILTER_SEQUENCE = 0x01
SUCCESS, NO_RECORDS = 0x01, 0x06
RESPONSES = {0x01: "success", 0x02: "op code not supported", 0x03: "invalid operator",
             0x04: "operator not supported", 0x05: "invalid operand", 0x06: "no records found",
             0x07: "abort unsuccessful", 0x08: "procedure not completed", 0x09: "operand not supported"}
OP_NAMES = {REPORT: "report stored records", DELETE: "delete stored records", ABORT: "abort operation",
            REPORT_NUMBER: "report number of stored records"}
MAX_SEQUENCE = 0xFFFF


def report_all() -> bytes:
    return bytes([REPORT, ALL])


def report_from(sequence: int) -> bytes:
    """Report stored records with sequence number >= `sequence`."""
    return bytes([REPORT, GREATER_OR_EQUAL, FILTER_SEQUENCE]) + _u16(sequence)


def report_after(last_seen: int | None) -> bytes:
    """The incremental request: everything after the last stored sequence number.

    Nothing seen yet -> all records. After 0xFFFF the meter's counter wraps, so ask for all and let
    the stable reading ids drop what is already stored.
    """
    if last_seen is None or last_seen >= MAX_SEQUENCE:
        return report_all()
    return report_from(last_seen + 1)


def count_after(last_seen: int | None) -> bytes:
    if last_seen is None or last_seen >= MAX_SEQUENCE:
        return bytes([REPORT_NUMBER, ALL])
    return bytes([REPORT_NUMBER, GREATER_OR_EQUAL, FILTER_SEQUENCE]) + _u16(last_seen + 1)


def report_range(first: int, last: int) -> bytes:
    return bytes([REPORT, WITHIN_RANGE, FILTER_SEQUENCE]) + _u16(first) + _u16(last)


def report_last() -> bytes:
    return bytes([REPORT, LAST])


def abort() -> bytes:
    return bytes([ABORT, NULL])


def _u16(v: int) -> bytes:
    if not 0 <= v <= MAX_SEQUENCE:
        raise ValueError(f"sequence number {v} is not a uint16")
    return v.to_bytes(2, "little")


@dataclass(frozen=True)
class Response:
    request_op: int | None      # which request this answers (None for a number-of-records response)
    code: int | None            # response value (None for a number-of-records response)
    count: int | None = None    # number of records (number-of-records response)

    @property
    def success(self) -> bool:
        return self.code == SUCCESS

    @property
    def no_records(self) -> bool:
        return self.code == NO_RECORDS

    @property
    def error(self) -> str | None:
        """None when the meter did what was asked (or had nothing to send); else why not."""
        if self.code in (None, SUCCESS, NO_RECORDS):
            return None
        what = OP_NAMES.get(self.request_op, f"op code {self.request_op:#04x}")
        return f"the meter answered {what} with '{RESPONSES.get(self.code, f'unknown code {self.code:#04x}')}'"


def parse_response(data: bytes) -> Response:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RacpFrameError("Record Access Control Point: expected bytes")
    data = bytes(data)
    if len(data) < 3:
        raise RacpFrameError(f"Record Access Control Point: {len(data)} bytes is too short for a response")
    op, operator = data[0], data[1]
    if operator != NULL:
        raise RacpFrameError(f"Record Access Control Point: response operator must be 0x00 (null), got {operator:#04x}")
    if op == RESPONSE_CODE:
        if len(data) != 4:
            raise RacpFrameError(f"Record Access Control Point: a response code is 4 bytes, got {len(data)}")
        return Response(request_op=data[2], code=data[3])
    if op == NUMBER_RESPONSE:
        if len(data) - 2 not in (1, 2, 4):   # Nordic accepts uint8/16/32 counts; 3 bytes is invalid
            raise RacpFrameError(f"Record Access Control Point: number of records of {len(data) - 2} bytes")
        return Response(request_op=None, code=None, count=int.from_bytes(data[2:], "little"))
    raise RacpFrameError(f"Record Access Control Point: op code {op:#04x} is not a response")
