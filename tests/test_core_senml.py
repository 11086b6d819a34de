"""SenML (RFC 8428) parsing: the pure half of the MQTT driver."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from device_drivers.mqtt.senml import SenMLError, parse

from storable import assert_storable

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def test_base_fields_resolve_per_rfc_8428():
    # RFC 8428 §4.6 resolution: bt + t, bu when u is absent, bn prefixed to n
    payload = json.dumps([{"bn": "urn:dev:mac:a4c138:", "bt": 1.7e9, "bu": "mm[Hg]", "n": "8480-6", "v": 128},
                          {"n": "8462-4", "v": 82, "t": 1}]).encode()
    sys, dia = parse("bp-1", payload, now=NOW)
    assert (sys.code, sys.value, sys.unit) == ("8480-6", 128, "mm[Hg]")
    assert dia.device_time == datetime.fromtimestamp(1.7e9 + 1, timezone.utc)
    assert sys.meta["senml_name"] == "urn:dev:mac:a4c138:8480-6"


def test_the_same_reading_in_another_layout_keeps_its_id():
    a = parse("bp-1", b'[{"bt":1763884800,"n":"8480-6","u":"mm[Hg]","v":128}]', now=NOW)[0]
    b = parse("bp-1", b'[{"n": "8480-6", "u": "mm[Hg]", "v": 128, "t": 1763884800}]', now=NOW)[0]
    assert a.id == b.id
    c = parse("bp-2", b'[{"bt":1763884800,"n":"8480-6","u":"mm[Hg]","v":128}]', now=NOW)[0]
    assert c.id != a.id


def test_relative_time_is_relative_to_now():
    r = parse("d", b'[{"n":"2708-6","u":"%","v":97,"t":-60}]', now=NOW)[0]
    assert r.device_time == datetime(2026, 11, 23, 7, 59, tzinfo=timezone.utc)


@pytest.mark.parametrize("payload,reason", [
    (b"\xff\xfe", "not valid UTF-8 JSON"),
    (b"{}", "no 'n'"),
    (b"[]", "non-empty JSON array"),
    (b'"hello"', "non-empty JSON array"),
    (b"[1]", "record 0 is int"),
    (b'[{"n":"8480-6","u":"mm[Hg]","vs":"120"}]', "needs a numeric 'v', not 'vs'"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":true}]', "'v' must be a number"),
    (b'[{"n":"8480-6","v":120}]', "no unit"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":120,"t":"now"}]', "'t' must be a number"),
    (b'[{"n":"ferritin","u":"ug/L","v":5}]', "unknown code"),
    (json.dumps([{"n": "2708-6", "u": "%", "v": 97}] * 65).encode(), "at most 64"),
])
def test_bad_payloads_say_what_is_wrong(payload, reason):
    with pytest.raises(SenMLError, match=None) as e:
        parse("d", payload, now=NOW)
    assert reason in str(e.value)


def test_oversized_payload_is_refused_before_parsing():
    with pytest.raises(SenMLError, match="over the limit of 100 bytes"):
        parse("d", b"[" + b" " * 200 + b"]", now=NOW, max_bytes=100)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_readings_or_senml_error(data):
    try:
        out = parse("d", data, now=NOW)
    except SenMLError:
        return
    assert isinstance(out, list)
    assert_storable(out)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["n", "u", "v", "t", "bt", "bn", "bu", "bv", "vs"]), c, max_size=5),
                    max_leaves=12))
def test_arbitrary_json_gives_readings_or_senml_error(doc):
    try:
        out = parse("d", json.dumps(doc).encode(), now=NOW, max_bytes=10_000)
    except SenMLError:
        return
    assert all(r.value is not None for r in out)
    assert_storable(out)


# number literals as devices may write them: beyond a float, beyond a time, tokens that are not JSON
NUMBERS = st.one_of(st.sampled_from(["1" + "0" * 400, "-1" + "0" * 400, "1e999", "-1e999", "NaN", "Infinity",
                                     "-Infinity", "true", "false", "null", "1e308", "-1e308", "2e-400", "-0",
                                     "-1e12", "1e12", "253402300800", "253402300799.999", "-62135596800",
                                     "268435455", "268435456", "1.7e9", "120", "\"120\""]),
                    st.integers(-10 ** 30, 10 ** 30).map(str),
                    st.floats(allow_nan=False, allow_infinity=False).map(repr))
NAMES = st.sampled_from(['"8480-6"', '"weight"', '"MDC_TEMP_BODY"', '"2339-0"', '"x"', "1"])
UNITS = st.sampled_from(['"mm[Hg]"', '"Pa"', '"kg"', '"g"', '"Cel"', '"K"', '"mg/dL"', '"kg/m3"', '"%"', "7"])


@st.composite
def senml_text(draw) -> bytes:
    records = []
    for _ in range(draw(st.integers(1, 3))):
        fields = {"n": draw(NAMES), "u": draw(UNITS), "v": draw(NUMBERS)}
        for key in ("t", "bt", "bv"):
            if draw(st.booleans()):
                fields[key] = draw(NUMBERS)
        records.append("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}")
    return ("[" + ", ".join(records) + "]").encode()


@settings(max_examples=300, deadline=None)
@given(senml_text())
def test_any_number_a_device_may_write_gives_storable_readings_or_senml_error(payload):
    try:
        out = parse("d", payload, now=NOW, max_bytes=10_000)
    except SenMLError as e:
        assert str(e)
        return
    assert_storable(out)


@pytest.mark.parametrize("payload,reason", [
    # issue 12: each of these raised OverflowError (or let NaN through) and stopped the MQTT writer
    (b'[{"n":"8480-6","u":"mm[Hg]","v":1' + b"0" * 400 + b"}]", "'v' must be a finite number"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":120,"t":-1e12}]', "time -1e+12 is out of range"),
    (b'[{"bt":-1e12,"n":"8480-6","u":"mm[Hg]","v":120}]', "out of range"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":120,"t":1' + b"0" * 400 + b"}]", "'t' must be a finite number"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":NaN}]', "NaN is not a JSON number"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":-Infinity}]', "-Infinity is not a JSON number"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":1e999}]', "'v' must be a finite number"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":1e308,"bv":1e308}]', "'v' + 'bv' is out of range"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":120,"bt":false}]', "'bt' must be a number"),
    (b"[" * 3000 + b"]" * 3000, "nested too deeply"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":1' + b"0" * 5000 + b"}]", "not valid UTF-8 JSON"),
])
def test_numbers_and_times_beyond_range_are_a_senml_error(payload, reason):
    with pytest.raises(SenMLError) as e:
        parse("d", payload, now=NOW, max_bytes=20_000)
    assert reason in str(e.value)


def test_a_value_beyond_any_float_after_conversion_is_stored_rejected_never_inf():
    # 1e308 kPa is a finite number that becomes inf in mm[Hg]: ingest stores no value, with the reason
    [r] = parse("d", b'[{"n":"8480-6","u":"kPa","v":1e308}]', now=NOW)
    [row] = assert_storable([r])
    assert (row["status"], row["value"]) == ("rejected", None) and "beyond any possible value" in row["reason"]
