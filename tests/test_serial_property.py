"""Property tests: the serial parsers, fed arbitrary bytes, return readings or raise their own
FrameError subclass, never anything else; the E1381 link never raises and never ACKs a message
that was not reported as stored."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from device_drivers.astm.codec import ACK, AstmFrameError, decode_frame, make_frame, split_message
from device_drivers.astm.link import Link, Message, Send
from device_drivers.astm.results import Context, code_map, readings_from_message
from device_drivers.lines.profile import LineFrameError, load, parse_line
from edge.core.ingest import ingest
from edge.core.reading import Reading

from conftest import clinic_edge
from storable import assert_storable

CODES = code_map({"HbA1c": "4548-4"})
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
# bytes that look like E1394 often enough to reach the deeper branches
RECORDISH = st.lists(st.sampled_from([b"H|\\^&|||x|||||||P|1|20260101", b"P|1||", b"O|1|S1|", b"R|1|^^^HbA1c|",
                                      b"5.9", b"|%||||F||||20260101120000", b"L|1|N", b"\r", b"|", b"^", b"&",
                                      b"\\", b"\x00", b"\xff", b"C|1|I|x|G", b"Q|1"]), max_size=30).map(b"".join)
ANY = st.one_of(st.binary(max_size=400), RECORDISH)


@settings(max_examples=300, deadline=None)
@given(ANY)
def test_e1394_reader_returns_readings_or_astm_frame_error(data):
    try:
        readings, ctx = readings_from_message(data, Context(), device_id="a", codes=CODES, tz=timezone.utc)
    except AstmFrameError:
        return
    assert all(isinstance(r, Reading) and r.transport == "astm" for r in readings)
    assert isinstance(ctx, Context)
    assert_storable(readings)


# result values and times as analysers may write them, including beyond a float and beyond a year
VALUES = st.one_of(st.sampled_from(["1e999", "-1e999", "1" + "0" * 400, "5.9", "5,9", "+.5", "1e-999", "NaN",
                                    "inf", ">14.0", "", "0", "-0.0", "1E308", "9" * 40]),
                   st.floats(allow_nan=False, allow_infinity=False).map(repr))
TIMES = st.sampled_from(["", "20260301120000", "00010101000000", "00010101", "99991231235959", "99991231",
                         "20261340", "2026", "x", "20260230", "10000101"])


@st.composite
def astm_message(draw) -> bytes:
    records = [b"H|\\^&|||Analyser^1|||||||P|1|" + draw(TIMES).encode(), b"P|1||110105194912310021", b"O|1|S1"]
    for n in range(1, draw(st.integers(1, 4)) + 1):
        test = draw(st.sampled_from(["HbA1c", "GLU", "X"]))
        records.append(f"R|{n}|^^^{test}|{draw(VALUES)}|%||||F||||{draw(TIMES)}".encode())
    return b"\r".join(records + [b"L|1|N"]) + b"\r"


@settings(max_examples=300, deadline=None)
@given(astm_message(), st.sampled_from([timezone.utc, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")]))
def test_astm_results_with_any_value_and_time_are_storable_or_astm_frame_error(text, tz):
    codes = code_map({"HbA1c": "4548-4", "GLU": {"code": "2339-0", "unit": "mmol/L"}})
    try:
        readings, _ = readings_from_message(text, Context(), device_id="a", codes=codes, tz=tz)
    except AstmFrameError:
        return
    assert_storable(readings)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 7), st.booleans())
def test_frame_decoder_roundtrips_or_raises_astm_frame_error(text, number, last):
    clean = bytes(b for b in text if b not in (2, 3, 4, 5, 0x17, 10, 13))
    assert decode_frame(make_frame(number, clean, last)) == (number, clean, last)
    try:
        decode_frame(text)
    except AstmFrameError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20), st.lists(st.booleans(), max_size=20))
def test_link_never_raises_and_acks_a_final_frame_only_after_stored(chunks, store_ok):
    link = Link()
    answers = iter(store_ok)
    t = 0.0
    for chunk in chunks:
        t += 1
        pending = link.feed(chunk, t)
        while pending:
            action = pending.pop(0)
            assert isinstance(action, (Send, Message)) or action.__class__.__name__ in ("SessionEnded", "Problem")
            if isinstance(action, Message):
                assert link.state == Link.STORING
                pending = (link.stored(t) if next(answers, True) else link.not_stored("no", t)) + pending
        link.tick(t)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=600), st.integers(10, 240))
def test_any_message_text_goes_through_the_link_intact(text, size):
    clean = bytes(b for b in text if b not in (2, 3, 4, 5, 0x17, 10, 13))
    link, got = Link(), []
    out = link.feed(b"\x05" + b"".join(split_message(clean, size=size)), 0)
    got = [a.text for a in out if isinstance(a, Message)]
    assert got == [clean]
    assert link.stored(0)[0] == Send(ACK)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_line_parser_returns_readings_or_line_frame_error(data):
    for name in ("bp-sys-dia-pul", "weighing-indicator-st-gs", "glucose-meter-line"):
        try:
            readings = parse_line(load(name), data, device_id="d", received=NOW, tz=timezone.utc)
        except LineFrameError:
            continue
        assert all(isinstance(r, Reading) for r in readings)
        assert_storable(readings)


LINE_NUMBERS = st.sampled_from(["128", "1" + "0" * 400, "99999999999999999999", "0", "065.40", "+0065.40"])
LINE_TIMES = st.sampled_from(["2026-03-01 09:12", "0001-01-01 00:00", "9999-12-31 23:59", "2026-13-01 00:00"])


@settings(max_examples=200, deadline=None)
@given(st.tuples(LINE_NUMBERS, LINE_NUMBERS, LINE_NUMBERS, LINE_TIMES),
       st.sampled_from([timezone.utc, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")]))
def test_bp_lines_with_any_number_and_time_are_storable_or_line_frame_error(parts, tz):
    sys_, dia, pul, when = parts
    line = f"SYS={sys_},DIA={dia},PR={pul},ID=110105194912310021,{when}".encode()
    glu = f"GLU {sys_} mmol/L {when}".encode()
    for name, text in (("bp-sys-dia-pul", line), ("glucose-meter-line", glu)):
        try:
            readings = parse_line(load(name), text, device_id="d", received=NOW, tz=tz)
        except LineFrameError as e:
            assert str(e)
            continue
        assert_storable(readings)


def test_a_line_time_before_year_1_in_utc_is_a_line_frame_error():
    with pytest.raises(LineFrameError, match="out of range"):
        parse_line(load("glucose-meter-line"), b"GLU 6.2 mmol/L 0001-01-01 00:00", device_id="d", received=NOW,
                   tz=ZoneInfo("Asia/Shanghai"))


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"readings --json printed {c}"))


def test_astm_1e999_is_never_inf_and_readings_json_stays_valid(node, env):
    # issue 12: R.4 = 1e999 became float inf, was stored, and `readings --json` printed Infinity
    from edge.core import devices
    devices.add(node.store, "a1c", kind="other", transport="astm", now=NOW)
    text = (b"H|\\^&|||Analyser^1|||||||P|1|20260301120000\rP|1||110105194912310021\rO|1|S1\r"
            b"R|1|^^^HbA1c|1e999|%||||F||||20260301120000\rR|2|^^^HbA1c|5.9|%||||F||||20260301120000\rL|1|N\r")
    readings, _ = readings_from_message(text, Context(), device_id="a1c", codes=CODES, tz=timezone.utc)
    ingest(node.store, readings)
    listed = _strict(clinic_edge(env, "readings", "--json").stdout)
    assert sorted((r["value"] is None, r["status"]) for r in listed) == [(False, "valid"), (True, "rejected")]
    [bad] = [r for r in listed if r["value"] is None]
    assert "beyond any possible value" in bad["reason"]
