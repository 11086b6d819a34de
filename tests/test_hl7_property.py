"""Property tests: the HL7 parser and the MLLP decoder, fed arbitrary bytes, return readings
(or messages) or their own Hl7FrameError, never anything else."""
from __future__ import annotations

import json
from datetime import timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from device_drivers.hl7.mllp import Decoder, frame
from device_drivers.hl7.oru import Hl7FrameError, parse_oru
from edge.core.reading import Reading

from storable import assert_storable

HL7ISH = st.lists(st.sampled_from([b"MSH|^~\\&|A||||20260101||ORU^R01|C1|P|2.6", b"\r", b"PID|||123", b"OBR|1|||x|||2026",
                                   b"OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1|", b"120", b"|266016^MDC_DIM_MMHG^MDC",
                                   b"|||||R|||20260101120000+0800", b"|", b"^", b"~", b"\\", b"&", b"\xff", b"NM", b"ST"]),
                  max_size=30).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), HL7ISH))
def test_oru_parser_returns_readings_or_hl7_frame_error(data):
    try:
        header, readings = parse_oru(data, device_id="m", tz=timezone.utc)
    except Hl7FrameError:
        return
    assert header.control_id
    assert all(isinstance(r, Reading) and r.transport == "hl7" for r in readings)
    assert_storable(readings)


# OBX values, result statuses (HL7 table 0085 and junk) and times (year 1 to beyond 9999, any offset)
OBX_VALUES = st.sampled_from(["120", "1" + "0" * 400, "-" + "9" * 320, "0", ".5", "37.", "-1", "1e5", "", "NaN"])
STATUSES = st.sampled_from(["", "F", "P", "R", "S", "C", "U", "A", "B", "W", "X", "D", "I", "N", "O", "Z", "f", "CC"])
TIMES = st.sampled_from(["", "20260912120000+0800", "00010101000000+1400", "99991231235959-1200", "9999123123",
                         "20260912120000.1234+0530", "20261312", "2026091212+2400", "2026"])
CODES = st.sampled_from(["150301^MDC_PRESS_CUFF_SYS^MDC", "150344^MDC_TEMP^MDC", "151562^MDC_RESP_RATE^MDC",
                         "150456^MDC_PULS_OXIM_SAT_O2^MDC", "108^MNDRY_ECG_PAUSE_RATE^99MNDRY", "^^MDC"])


@st.composite
def oru_message(draw) -> bytes:
    segs = [f"MSH|^~\\&|MON||||{draw(TIMES)}||ORU^R01|C{draw(st.integers(0, 99))}|P|2.6", "PID|||1101",
            f"OBR|1||||||{draw(TIMES)}"]
    for i in range(1, draw(st.integers(1, 5)) + 1):
        segs.append(f"OBX|{i}|NM|{draw(CODES)}|1.{i}|{draw(OBX_VALUES)}|266016^MDC_DIM_MMHG^MDC|||||"
                    f"{draw(STATUSES)}|||{draw(TIMES)}")
    return "\r".join(segs).encode()


@settings(max_examples=300, deadline=None)
@given(oru_message(), st.sampled_from([timezone.utc, ZoneInfo("Asia/Shanghai"), ZoneInfo("Pacific/Pago_Pago")]))
def test_any_obx_value_status_and_time_gives_storable_readings_or_hl7_frame_error(message, tz):
    try:
        _, readings = parse_oru(message, device_id="m", tz=tz)
    except Hl7FrameError as e:
        assert str(e)
        return
    for row in assert_storable(readings):
        status = json.loads(row["meta"]).get("result_status", "").upper()
        if status not in ("", "F", "P", "R", "S", "C", "U", "A", "B"):          # W, X, D... are never a value
            assert row["value"] is None and row["status"] != "valid"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=100), max_size=10), st.lists(st.binary(max_size=50), max_size=5))
def test_mllp_decoder_finds_every_framed_message_among_noise(noise, messages):
    clean = [bytes(b for b in m if b not in (0x0B, 0x1C)) for m in messages]
    stream = b""
    for i, m in enumerate(clean):
        junk = bytes(b for b in (noise[i] if i < len(noise) else b"") if b not in (0x0B, 0x1C))
        stream += junk + frame(m)
    d = Decoder()
    out = []
    for k in range(0, len(stream), 7):                      # arrives in small pieces
        out += d.feed(stream[k:k + 7])
    assert out == clean


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_mllp_decoder_returns_messages_or_errors_only(data):
    for item in Decoder(max_message=64).feed(data):
        assert isinstance(item, (bytes, Hl7FrameError))


def test_obx_values_and_times_beyond_range_are_kept_without_value_or_time():
    # a 400-digit OBX-5 was float('inf'); 0001-01-01 at +14:00 is before year 1 in UTC and made
    # ingest raise OverflowError (no ACK: the monitor resent the message for ever)
    msg = ("MSH|^~\\&|MON||||20260912120005+0800||ORU^R01|B1|P|2.6\rPID|||1\rOBR|1\r"
           "OBX|1|NM|150301^MDC_PRESS_CUFF_SYS^MDC|1.1|1" + "0" * 400 + "|266016^MDC_DIM_MMHG^MDC|||||F|||"
           "20260912120000+0800\r"
           "OBX|2|NM|150302^MDC_PRESS_CUFF_DIA^MDC|1.2|80|266016^MDC_DIM_MMHG^MDC|||||F|||00010101000000+1400\r")
    _, (sys_, dia) = parse_oru(msg.encode(), device_id="m", tz=timezone.utc)
    assert sys_.value is None and "beyond any possible value" in sys_.no_value_reason
    assert dia.value == 80 and dia.device_time is None
    rows = {r["code"]: r for r in assert_storable([sys_, dia])}
    assert rows["8480-6"]["status"] == "rejected" and rows["8462-4"]["status"] == "valid"
