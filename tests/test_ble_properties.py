"""Property: every BLE parser, fed arbitrary bytes, returns readings or raises its own FrameError,
and what it returns can be stored (real ingest, temp SQLite) and printed as valid JSON."""
import math
from datetime import timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from device_drivers.ble import bp, glucose, heart_rate, ieee11073, plx, racp, temperature, weight
from device_drivers.ble.errors import (BloodPressureFrameError, GlucoseFrameError, HeartRateFrameError,
                                       PlxFrameError, RacpFrameError, TemperatureFrameError, WeightFrameError)
from edge.core.reading import Reading

from storable import assert_storable

PARSERS = [
    (bp.parse, BloodPressureFrameError), (bp.parse_intermediate, BloodPressureFrameError),
    (temperature.parse, TemperatureFrameError), (temperature.parse_intermediate, TemperatureFrameError),
    (heart_rate.parse, HeartRateFrameError), (glucose.parse, GlucoseFrameError),
    (glucose.parse_context, GlucoseFrameError), (weight.parse, WeightFrameError),
    (plx.parse_spot_check, PlxFrameError), (plx.parse_continuous, PlxFrameError),
]


@pytest.mark.parametrize("parse,error", PARSERS, ids=lambda p: getattr(p, "__module__", "") + "." +
                         getattr(p, "__name__", ""))
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40))
def test_arbitrary_bytes_give_readings_or_that_parsers_frame_error(parse, error, data):
    try:
        readings = parse(data, "dev")
    except error as e:
        assert str(e)
        return
    assert isinstance(readings, list)
    for r in readings:
        assert isinstance(r, Reading) and r.transport == "ble" and r.device_id == "dev"
        assert r.value is None or math.isfinite(r.value)
        assert r.value is not None or r.no_value_reason   # no value always says why
        r.as_dict()   # serialisable id, meta
    assert_storable([r for r in readings if not r.meta.get("intermediate")])


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=12))
def test_racp_arbitrary_bytes(data):
    try:
        racp.parse_response(data)
    except RacpFrameError as e:
        assert str(e)


# Date Time fields anywhere in 1582-9999 (and beyond), in zones on both sides of UTC: the
# glucose time offset, or the zone, can take a valid Date Time out of what can be stored.
ZONES = [timezone.utc, ZoneInfo("Asia/Shanghai"), ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Pacific/Pago_Pago")]


@st.composite
def glucose_frame(draw) -> bytes:
    flags = draw(st.integers(0, 0x1F))
    year = draw(st.sampled_from([0, 1, 1581, 1582, 2025, 9998, 9999, 10000, 0xFFFF]))
    body = (bytes([flags]) + draw(st.integers(0, 0xFFFF)).to_bytes(2, "little") + year.to_bytes(2, "little")
            + bytes([draw(st.integers(0, 13)), draw(st.integers(0, 32)), draw(st.integers(0, 24)),
                     draw(st.integers(0, 60)), draw(st.integers(0, 60))]))
    if flags & 0x01:
        body += draw(st.integers(-32768, 32767)).to_bytes(2, "little", signed=True)
    if flags & 0x02:
        body += draw(st.integers(0, 0xFFFF)).to_bytes(2, "little") + bytes([draw(st.integers(0, 255))])
    if flags & 0x08:
        body += draw(st.integers(0, 0xFFFF)).to_bytes(2, "little")
    return body


@settings(max_examples=300, deadline=None)
@given(frame=glucose_frame(), tz=st.sampled_from(ZONES))
def test_glucose_records_with_any_time_give_storable_readings_or_glucose_frame_error(frame, tz):
    try:
        readings = glucose.parse(frame, "meter", tz=tz)
    except GlucoseFrameError as e:
        assert str(e)
        assert [r.value for r in glucose.unreadable(frame, "meter", e)] == [None]   # kept, with its reason
        return
    assert_storable(readings)


def test_glucose_base_time_9999_12_31_plus_offset_is_a_glucose_frame_error():
    # issue 12: 9999-12-31 23:59 + 30 min raised OverflowError (not GlucoseFrameError)
    frame = bytes.fromhex("03" "0300" "0f270c1f173b00" "1e00" "5fb0" "11")
    with pytest.raises(GlucoseFrameError, match="beyond the last time"):
        glucose.parse(frame, "meter")
    with pytest.raises(GlucoseFrameError, match="beyond the last time"):    # 9999-12-31 23:00 at UTC-11
        glucose.parse(bytes.fromhex("02" "0300" "0f270c1f170000" "5fb0" "11"), "meter", tz=ZoneInfo("Pacific/Pago_Pago"))


@settings(max_examples=300, deadline=None)
@given(raw=st.integers(0, 0xFFFFFFFF))
def test_float_special_values_are_no_value_and_others_finite(raw):
    self_check(ieee11073.float32(raw), ieee11073.FLOAT_SPECIAL, raw & 0xFFFFFF)


def test_every_sfloat_is_a_finite_number_or_a_named_special_value():
    for raw in range(1 << 16):
        self_check(ieee11073.sfloat(raw), ieee11073.SFLOAT_SPECIAL, raw & 0x0FFF)


def self_check(n, specials, mantissa):
    if mantissa in specials:          # NaN, NRes, +INF, -INF, reserved: never a number
        assert n.value is None and n.special == specials[mantissa] and n.reason
    else:
        assert n.special is None and math.isfinite(n.value) and math.isfinite(n.times_ten_to(5))


@pytest.mark.parametrize("special,raw", [("NaN", "ff07"), ("NRes", "0008"), ("+INF", "fe07"), ("-INF", "0208")])
def test_sfloat_special_values_are_never_stored_as_a_value(special, raw):
    # Blood Pressure Measurement, mmHg, systolic = the special value, diastolic 80, mean 93
    readings = bp.parse(bytes.fromhex("00" + raw + "5000" + "5d00"), "bpm-special")
    rows = {r["code"]: r for r in assert_storable(readings)}
    assert (rows["8480-6"]["value"], rows["8480-6"]["status"]) == (None, "rejected")
    assert special in rows["8480-6"]["reason"] and rows["8462-4"]["status"] == "valid"
