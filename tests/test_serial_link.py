"""The E1381 receiver state machine on its own (pure: bytes and a clock in, actions out).
Frames are built by our codec, whose checksums are checked against published vectors in
test_serial_astm.py (python-astm test_codecs, senaite.astm fixtures)."""
from __future__ import annotations

from device_drivers.astm.codec import ACK, ENQ, EOT, NAK, make_frame
from device_drivers.astm.link import Link, Message, Send, SessionEnded


def sends(actions) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def messages(actions) -> list[bytes]:
    return [a.text for a in actions if isinstance(a, Message)]


def test_final_frame_is_acked_only_by_stored_and_naked_by_not_stored():
    link = Link()
    assert sends(link.feed(ENQ, 0)) == [ACK]
    out = link.feed(make_frame(1, b"R|1|^^^X|1\r", True), 1)
    assert messages(out) == [b"R|1|^^^X|1\r"] and sends(out) == []
    assert sends(link.not_stored("disk full", 2)) == [NAK]
    out = link.feed(make_frame(1, b"R|1|^^^X|1\r", True), 3)      # the analyser resends it
    assert messages(out) == [b"R|1|^^^X|1\r"]
    assert sends(link.stored(4)) == [ACK]


def test_a_repeated_frame_whose_ack_was_lost_is_acked_again_but_not_delivered_twice():
    link = Link()
    link.feed(ENQ, 0)
    f = make_frame(1, b"H|\\^&\rR|1|^^^X|1\rL|1\r", True)
    assert messages(link.feed(f, 1))
    link.stored(1)
    out = link.feed(f, 2)
    assert sends(out) == [ACK] and messages(out) == [] and link.stats["repeated_frames"] == 1


def test_analysers_that_start_every_message_at_frame_1_are_accepted():
    link = Link()
    link.feed(ENQ, 0)
    for value in (b"1", b"2", b"3"):
        out = link.feed(make_frame(1, b"R|1|^^^X|" + value + b"\r", True), 1)
        assert messages(out) == [b"R|1|^^^X|" + value + b"\r"]
        link.stored(1)
    assert link.stats["renumbered_messages"] == 2


def test_wrong_frame_number_mid_message_is_naked():
    link = Link()
    link.feed(ENQ, 0)
    assert sends(link.feed(make_frame(1, b"H|\\^&\r", False), 1)) == [ACK]
    assert sends(link.feed(make_frame(3, b"L|1\r", True), 2)) == [NAK]
    assert messages(link.feed(make_frame(2, b"L|1\r", True), 3)) == [b"H|\\^&\rL|1\r"]


def test_bytes_arriving_while_storing_wait_for_the_ack():
    link = Link()
    link.feed(ENQ, 0)
    out = link.feed(make_frame(1, b"L|1\r", True) + EOT, 1)
    assert messages(out) and not any(isinstance(a, SessionEnded) for a in out)
    out = link.stored(2)
    assert sends(out) == [ACK] and any(isinstance(a, SessionEnded) for a in out)


def test_receiver_timer_uses_the_clock_it_is_given():
    link = Link(frame_timeout=30)
    link.feed(ENQ, 100)
    link.feed(make_frame(1, b"H|\\^&\r", False), 110)
    assert link.tick(140) == []
    [ended] = link.tick(140.5)
    assert ended.discarded and link.state == Link.IDLE


def test_busy_receiver_answers_enq_with_nak():
    link = Link()
    link.busy = True
    assert sends(link.feed(ENQ, 0)) == [NAK] and link.state == Link.IDLE
    link.busy = False
    assert sends(link.feed(ENQ, 1)) == [ACK]
