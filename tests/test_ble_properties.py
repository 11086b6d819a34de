"""Property: every BLE parser, fed arbitrary bytes, returns readings or raises its own FrameError."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from device_drivers.ble import bp, glucose, heart_rate, plx, racp, temperature, weight
from device_drivers.ble.errors import (BloodPressureFrameError, GlucoseFrameError, HeartRateFrameError,
                                       PlxFrameError, RacpFrameError, TemperatureFrameError, WeightFrameError)
from edge.core.reading import Reading

PARSERS = [
    (bp.parse, BloodPressureFrameError), (bp.parse_intermediate, BloodPressureFrameError),
    (temperature.parse, TemperatureFrameError), (temperature.parse_intermediate, TemperatureFrameError),
    (heart_rate.parse, HeartRateFrameError), (glucose.parse, GlucoseFrameError),
    (glucose.parse_context, GlucoseFrameError), (weight.parse, WeightFrameError),
    (plx.parse_spot_check, PlxFrameError), (plx.parse_continuous, PlxFrameError),
]


@pytest.mark.parametrize("parse,error", PARSERS, ids=lambda p: getattr(p, "__module__", "") + "." +
                         getattr(p, "__name__", ""))
@settings(max_examples=400, deadline=None)
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


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=12))
def test_racp_arbitrary_bytes(data):
    try:
        racp.parse_response(data)
    except RacpFrameError as e:
        assert str(e)
