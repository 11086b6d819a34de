"""Property tests: the serial parsers, fed arbitrary bytes, return readings or raise their own
FrameError subclass, never anything else; the E1381 link never raises and never ACKs a message
that was not reported as stored."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings, strategies as st

from device_drivers.astm.codec import ACK, AstmFrameError, decode_frame, make_frame, split_message
from device_drivers.astm.link import Link, Message, Send
from device_drivers.astm.results import Context, code_map, readings_from_message
from device_drivers.lines.profile import LineFrameError, load, parse_line
from edge.core.reading import Reading

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
