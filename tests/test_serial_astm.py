"""ASTM E1381/E1394 over a real pseudo-terminal: pyserial on the node's end, a simulated analyser
on the other. Test vectors:
- AFINION: senaite/senaite.astm src/senaite/astm/tests/data/abbott_afinion2.txt (Abbott Afinion 2,
  HbA1c 5.9 %, one frame, checksum F2 - reproduced by our codec below).
- DCA: senaite/senaite.astm src/senaite/astm/tests/data/dca_vantage.txt (Siemens DCA Vantage,
  one 307-byte frame, longer than E1381's 247, checksum 43 - reproduced below).
- Checksums "1A|B|C|D<CR><ETX>" -> BF and "1foo|1<CR><ETX>" -> 32: kxepal/python-astm
  astm/tests/test_codecs.py (make_checksum), via docs/devices.md, ASTM low level.
"""
from __future__ import annotations

import gc
import json
import sqlite3
import threading

import pytest

from device_drivers.astm.codec import ACK, EOT, ENQ, NAK, checksum, make_frame, split_message
from device_drivers.astm.driver import AstmDriver
from device_drivers.astm.simulator import Analyser, NoReply
from device_drivers.errors import DriverError
from serial_fixtures import FakeMonotonic, PlugPort

from conftest import clinic_edge, wait_for

AFINION = (b"H|\\^&|||Afinion 2 Analyzer^^AF20052397|||||||P|1|20241206141235\r"
           b"P|1||3643|||||U\r"
           b"O|1||5|^^^HbA1c|||||||N||||^O||||||||^10228413||F\r"
           b"R|1|^^^HbA1c|5.9|%||||F||3643||20241206140615\r"
           b"L|1|N\r")
DCA = (b"H|\\^&|||DCA VANTAGE^04.04.00.00^S067337|||||||P||20240820151746\rP|1|BU24R554\r"
       b"O|1||660^0090||||||||||||||||||||||F\rR|1|^^^Alb|63.7|mg/L||||F|||20240820151030\r"
       b"C|1|I|1.000^0.0 mg/L|G\rR|2|^^^Crt|230.8|mg/dL||||F|||20240820151030\rC|1|I|1.000^0.0 mg/dL|G\r"
       b"R|3|^^^Ratio|27.6|mg/g||||F|||20240820151030\rL|1|N\r")


def test_codec_reproduces_the_published_checksums():
    assert checksum(b"1A|B|C|D\r\x03") == b"BF"
    assert checksum(b"1foo|1\r\x03") == b"32"
    assert split_message(AFINION)[0].endswith(b"\x03F2\r\n")
    assert make_frame(1, DCA, True).endswith(b"\x0343\r\n") and len(make_frame(1, DCA, True)) == 307


@pytest.fixture
def port(tmp_path):
    p = PlugPort(tmp_path / "ttyANALYSER")
    p.plug()
    yield p
    p.close()


@pytest.fixture
def clock():
    return FakeMonotonic()


@pytest.fixture
def driver(node, port, clock):
    d = AstmDriver(node, {"url": str(port.path), "device_id": "afinion", "codes": {"HbA1c": "4548-4"}},
                   monotonic=clock)
    d.start()
    wait_for(lambda: d.port_open, 5, message="the driver to open the pty")
    yield d
    d.stop()
    d.join(5)


def stored(node, code=None) -> list[dict]:
    conn = sqlite3.connect(node.config.store_path)   # a separate connection: sees only what committed
    conn.row_factory = sqlite3.Row
    try:
        sql = "SELECT * FROM readings" + (" WHERE code = ?" if code else "")
        return [dict(r) for r in conn.execute(sql, (code,) if code else ())]
    finally:
        conn.close()


def test_single_frame_result_is_stored_before_its_ack_and_listed(node, env, port, driver):
    node.store.conn.execute("INSERT INTO residents (id, name, health_record_no, created_at, updated_at)"
                            " VALUES ('res-1', '张三', '3643', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
    seen_at_ack = []
    analyser = Analyser(port.master)
    assert analyser.transmit(AFINION, on_final_ack=lambda: seen_at_ack.extend(stored(node, "4548-4")))
    assert len(seen_at_ack) == 1, "the final ACK came before the result was committed"
    rows = json.loads(clinic_edge(env, "readings", "--json").stdout)
    [r] = [r for r in rows if r["device_id"] == "afinion"]
    assert (r["code"], r["value"], r["unit"], r["status"], r["resident_id"]) == ("4548-4", 5.9, "%", "valid", "res-1")
    meta = json.loads(seen_at_ack[0]["meta"])
    assert meta["patient_id"] == "3643" and meta["sample_id"] == "5" and meta["completed"] == "20241206140615"
    assert seen_at_ack[0]["device_time"] == "2024-12-06T06:06:15.000Z"   # 14:06:15 Asia/Shanghai


def test_multi_frame_message_with_frame_numbers_wrapping(node, port, driver):
    analyser = Analyser(port.master)
    assert analyser.transmit(DCA, frame_size=20)          # 15 frames: numbers 1..7,0,1..7
    rows = wait_for(lambda: stored(node), message="results")
    assert sorted((r["code"], r["value"], r["status"]) for r in rows) == [
        ("^^^Alb", 63.7, "unmapped"), ("^^^Crt", 230.8, "unmapped"), ("^^^Ratio", 27.6, "unmapped")]
    assert json.loads(rows[0]["meta"])["patient_id"] == "BU24R554"


def test_long_frame_from_a_real_analyser_is_accepted(node, port, driver):
    analyser = Analyser(port.master)
    assert analyser.establish() == ACK
    assert analyser.send_frame(make_frame(1, DCA, True)) == ACK      # 307 bytes, one frame
    analyser.write(EOT)
    assert len(stored(node)) == 3


def test_bad_checksum_is_naked_and_the_resent_frame_stored_once(node, port, driver):
    analyser = Analyser(port.master)
    good = split_message(AFINION)[0]
    bad = good[:-4] + b"00\r\n"
    assert analyser.establish() == ACK
    analyser.write(bad)
    assert analyser.reply() == NAK
    assert stored(node) == []
    assert analyser.send_frame(good) == ACK
    analyser.write(EOT)
    assert len(stored(node, "4548-4")) == 1


def test_six_naks_abort_and_nothing_is_stored(node, port, driver):
    analyser = Analyser(port.master)
    bad = split_message(AFINION)[0][:-4] + b"00\r\n"
    assert analyser.establish() == ACK
    assert analyser.send_frame(bad, retries=5) == NAK         # six transmissions, six NAKs
    analyser.write(EOT)                                       # the analyser gives up
    assert analyser.replies.count(NAK) == 6
    wait_for(lambda: driver.link.state == "idle", message="the node to end the session")
    assert stored(node) == []
    assert analyser.transmit(AFINION)                         # the next try goes through
    assert len(stored(node)) == 1


def test_receiver_timeout_discards_the_incomplete_message(node, port, driver, clock):
    analyser = Analyser(port.master)
    first, second = split_message(AFINION, size=100)[:2]
    assert analyser.establish() == ACK
    assert analyser.send_frame(first) == ACK
    clock.advance(31)                                   # E1381: 30 s without a frame
    wait_for(lambda: driver.link.state == "idle", message="the receiver timer")
    analyser.write(second)
    with pytest.raises(NoReply):
        analyser.reply(timeout=0.3)                     # not in a session any more: ignored
    assert stored(node) == [] and driver.link.stats["timeouts"] == 1
    assert analyser.transmit(AFINION, frame_size=100)   # the analyser starts over
    assert len(stored(node)) == 1


def test_contention_repeated_enq_and_restart_mid_message(node, port, driver):
    analyser = Analyser(port.master)
    analyser.write(ENQ + ENQ)                 # its timer fired before our ACK arrived: both answered
    assert analyser.reply() == ACK and analyser.reply() == ACK
    frames = split_message(AFINION, size=100)
    assert analyser.send_frame(frames[0]) == ACK
    analyser.write(ENQ)                       # the analyser starts over mid-message
    assert analyser.reply() == ACK
    for f in frames:
        assert analyser.send_frame(f) == ACK
    analyser.write(EOT)
    rows = stored(node)
    assert len(rows) == 1 and driver.link.stats["restarts"] == 1


def test_noise_between_frames_is_ignored(node, port, driver):
    analyser = Analyser(port.master)
    frames = split_message(AFINION, size=100)
    analyser.write(b"\x00\xff line noise \r\n")
    assert analyser.establish() == ACK
    for f in frames:
        analyser.write(b"\x11\x13garbage")
        assert analyser.send_frame(f) == ACK
    analyser.write(EOT)
    assert len(stored(node)) == 1 and driver.link.stats["noise_bytes"] > 0


def test_unreadable_records_are_naked_and_noted_on_the_device(node, env, port, driver):
    analyser = Analyser(port.master)
    assert analyser.establish() == ACK
    no_test_id = b"H|\\^&\rR|1||5.9|%\rL|1|N\r"
    analyser.write(split_message(no_test_id)[0])
    assert analyser.reply() == NAK
    analyser.write(EOT)
    assert stored(node) == []
    [dev] = json.loads(clinic_edge(env, "device", "list", "--json").stdout)
    assert "no test id" in dev["last_error"]


def test_unplugged_mid_message_continues_when_the_port_returns(node, port, driver):
    analyser = Analyser(port.master)
    first, second = split_message(AFINION, size=100)[:2]
    assert analyser.establish() == ACK
    assert analyser.send_frame(first) == ACK
    port.unplug()
    wait_for(lambda: not driver.port_open, message="the driver to notice the unplug")
    analyser = Analyser(port.plug())
    wait_for(lambda: driver.port_open, 5, message="the driver to reopen the port")
    rest = split_message(AFINION, size=100)[1:]
    for f in rest:                                     # the analyser resends what was not ACKed
        assert analyser.send_frame(f) == ACK
    analyser.write(EOT)
    [row] = stored(node)
    assert row["value"] == 5.9 and driver.stats["port_lost"] == 1          # one unplug


def test_bad_config_is_one_line_naming_the_key(node):
    with pytest.raises(DriverError, match=r"drivers\.astm\.baudrate"):
        AstmDriver(node, {"url": "/dev/null", "baudrate": "fast"})
    with pytest.raises(DriverError, match=r"drivers\.astm\.url is required"):
        AstmDriver(node, {})
    with pytest.raises(DriverError, match=r"unknown key drivers\.astm\.baud\b"):
        AstmDriver(node, {"url": "/dev/null", "baud": 9600})
    with pytest.raises(DriverError, match=r"drivers\.astm\.codes\.HbA1c"):
        AstmDriver(node, {"url": "/dev/null", "codes": {"HbA1c": 5}})


def test_store_unavailable_means_nak_and_not_ready_until_it_recovers(node, tmp_path, port):
    """Nothing is ACKed that is not stored: with the database write-locked by someone else the final
    frame is NAKed, the next ENQ is answered NAK (receiver not ready), and once the lock is gone the
    analyser's retry is stored and ACKed."""
    d = AstmDriver(node, {"url": str(port.path), "device_id": "afinion", "store_patience": 1,
                          "codes": {"HbA1c": "4548-4"}})
    d.start()
    try:
        wait_for(lambda: d.port_open, 5, message="the port to open")
        locker = sqlite3.connect(node.config.store_path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")                      # e.g. a long backup or a stuck writer
        analyser = Analyser(port.master)
        assert analyser.establish() == ACK
        assert analyser.send_frame(split_message(AFINION)[0], retries=0) == NAK
        analyser.write(EOT)
        assert analyser.establish() == NAK                     # not ready: the analyser waits and retries
        locker.execute("ROLLBACK")
        locker.close()
        wait_for(lambda: not d.link.busy, 5, message="the driver to see the store recover")
        assert analyser.transmit(AFINION)
    finally:
        d.stop()
        d.join(5)
    assert len(stored(node)) == 1 and d.stats["store_failures"] == 1


def test_pyserial_spy_url_logs_the_conversation_for_diagnostics(node, tmp_path, port):
    log = tmp_path / "spy.txt"
    d = AstmDriver(node, {"url": f"spy://{port.path}?file={log}", "device_id": "afinion"})
    d.start()
    try:
        wait_for(lambda: d.port_open, 5, message="the spy port to open")
        assert Analyser(port.master).transmit(AFINION)
    finally:
        d.stop()
        d.join(5)
    gc.collect()
    text = log.read_text()
    # pyserial's spy writes its hex dump through a file it never closes, so lines can go missing
    # when it is read at once; the ACKs written and a received byte are always there
    assert "TX   0000  06" in text and " RX " in text
    assert [r["code"] for r in stored(node)] == ["^^^HbA1c"]      # no code map given: kept raw


def test_a_removed_device_is_not_brought_back_silently(node, port):
    from edge.core import devices

    d = AstmDriver(node, {"url": str(port.path), "device_id": "afinion"})
    d.start()
    d.stop()
    d.join(5)
    devices.remove(node.store, "afinion", now=node.clock.now())
    with pytest.raises(DriverError, match="names a device that was removed"):
        AstmDriver(node, {"url": str(port.path), "device_id": "afinion"}).start()
