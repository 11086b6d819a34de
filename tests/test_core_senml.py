"""SenML (RFC 8428) parsing: the pure half of the MQTT driver."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from device_drivers.mqtt.senml import SenMLError, parse

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
    (b'[{"n":"8480-6","u":"mm[Hg]","v":true}]', "'v' must be a finite number"),
    (b'[{"n":"8480-6","v":120}]', "no unit"),
    (b'[{"n":"8480-6","u":"mm[Hg]","v":120,"t":"now"}]', "'t' must be a finite number"),
    (b'[{"n":"cholesterol","u":"mmol/L","v":5}]', "unknown code"),
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
