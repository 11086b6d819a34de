"""Property tests: the HL7 parser and the MLLP decoder, fed arbitrary bytes, return readings
(or messages) or their own Hl7FrameError, never anything else."""
from __future__ import annotations

from datetime import timezone

from hypothesis import given, settings, strategies as st

from device_drivers.hl7.mllp import Decoder, frame
from device_drivers.hl7.oru import Hl7FrameError, parse_oru
from edge.core.reading import Reading

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
