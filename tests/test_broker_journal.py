"""The broker's journal (docs/mqtt.md, "The broker's journal"): the real plugin inside a real
mosquitto writes it, ingest reads it. A record cut off mid-write is ignored and counted; replaying
the journal, live delivery and a second replay together store each message once."""
from __future__ import annotations

import json
import logging
import shutil
import signal
import sqlite3

from device_drivers.mqtt import journal
from tests.conftest import add_device, wait_for
from tests.test_mqtt_durability import Publisher


def untimed(n: int) -> str:
    """A weight without a time: only its delivery tells two of them apart (docs/mqtt.md)."""
    return json.dumps([{"n": "29463-7", "u": "kg", "v": 60 + n / 10}])


def weights(data_dir) -> list[float]:
    db = sqlite3.connect(data_dir / "clinic-edge.db")
    try:
        return sorted(r[0] for r in db.execute("SELECT value FROM readings WHERE code = '29463-7'"))
    finally:
        db.close()


def publish_acked(pub: Publisher, payloads: list[str]) -> None:
    for i, p in enumerate(payloads):
        info = pub.client.publish(f"devices/{pub.device_id}/readings", p, qos=1)
        pub.mid_to_n[info.mid] = i
    wait_for(lambda: len(pub.acked) == len(payloads), timeout=20, message="PUBACKs")


def test_a_torn_last_record_is_ignored_and_counted(env, data_dir, broker, caplog):
    password = add_device(env, "scale-1", broker=broker)
    pub = Publisher(broker, "scale-1", password)
    try:
        publish_acked(pub, [untimed(n) for n in range(3)])
    finally:
        pub.close()
    broker.stop(signal.SIGKILL)
    d = journal.journal_dir(data_dir)
    [(_, seg)] = journal.segments(d)
    records, torn = journal.read_segment(seg)
    assert [r.seq for r in records] == [1, 2, 3] and not torn
    assert records[0].client_id == "scale-1" and records[0].topic == "devices/scale-1/readings"
    assert records[0].payload == untimed(0).encode()

    # the power went while the third record was being written: only its first half is on disk
    data = bytearray(seg.read_bytes())
    third = journal.SEGMENT_HEADER.size
    for _ in range(2):
        third += journal.RECORD_HEADER.unpack_from(data, third)[1]
    length = journal.RECORD_HEADER.unpack_from(data, third)[1]
    data[third + length // 2:third + length] = bytes(length - length // 2)
    seg.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING):
        found = journal.scan(d)
    assert [r.seq for r in found.records] == [1, 2]
    assert found.torn == 1
    assert "1 segment(s) end in a torn record" in caplog.text

    # the broker starts again: it keeps the torn segment as it is and appends to a new one
    broker.start()
    pub = Publisher(broker, "scale-1", password)
    try:
        publish_acked(pub, [untimed(9)])
    finally:
        pub.close()
    found = journal.scan(d)
    assert [r.seq for r in found.records] == [1, 2, 3]
    assert found.records[-1].payload == untimed(9).encode()
    assert found.torn == 1


def test_replay_and_live_delivery_store_each_message_once(env, data_dir, broker, ingest_proc):
    password = add_device(env, "scale-1", broker=broker)
    first = ingest_proc()          # subscribes: from now on the broker queues for ingest
    first.stop(signal.SIGKILL)
    pub = Publisher(broker, "scale-1", password)
    try:
        # the same weight twice is two readings; ingest is down: the broker queues them and journals them
        publish_acked(pub, [untimed(0), untimed(0), untimed(1)])
    finally:
        pub.close()
    second = ingest_proc()         # replays the journal and gets the broker's queue live: the same messages
    wait_for(lambda: len(weights(data_dir)) >= 3, timeout=20, message="the weights stored")
    wait_for(lambda: journal.watermark(journal.journal_dir(data_dir)) is not None, message="the watermark")
    second.stop()
    assert weights(data_dir) == [60.0, 60.0, 60.1]

    (journal.journal_dir(data_dir) / journal.WATERMARK).unlink()   # replay everything again
    ingest_proc()
    wait_for(lambda: journal.watermark(journal.journal_dir(data_dir)) is not None, message="the replay")
    assert weights(data_dir) == [60.0, 60.0, 60.1]


def test_the_journal_is_rotated_and_what_is_committed_is_removed(env, data_dir, broker, ingest_proc):
    broker.stop()
    shutil.rmtree(journal.journal_dir(data_dir))   # the size applies to files the broker makes
    broker.env["CLINIC_EDGE_BROKER_JOURNAL_SEGMENT_KIB"] = "16"   # ~130 records a file
    broker.start()
    password = add_device(env, "scale-1", broker=broker)
    ingest = ingest_proc()
    pub = Publisher(broker, "scale-1", password)
    try:
        publish_acked(pub, [untimed(n) for n in range(400)])
    finally:
        pub.close()
    wait_for(lambda: len(weights(data_dir)) == 400, timeout=30, message="every weight stored")
    assert ingest.stop() == 0     # a clean stop notes the watermark: everything is committed
    d = journal.journal_dir(data_dir)
    assert journal.watermark(d)[1] == 400
    [(first, _)] = journal.segments(d)      # only the file the broker appends to is left
    assert 300 < first <= 400
    assert journal.scan(d, epoch=journal.watermark(d)[0], after=400).records == []


def _written(pid: int) -> int:
    for line in open(f"/proc/{pid}/io"):
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no write_bytes in /proc/<pid>/io")


def test_each_reading_costs_the_broker_the_sectors_its_record_spans_not_a_page(env, data_dir, broker):
    """SD-card wear (docs/mqtt.md, "What a reading writes"): the journal overwrites only the
    512-byte sectors a record spans in its preallocated segment, so a ~200-byte reading costs
    about one sector where it cost a whole 4 KiB page, and every record still reads back whole."""
    pw = add_device(env, "bp-1", broker=broker)
    pub = Publisher(broker, "bp-1", pw)
    try:
        publish_acked(pub, [untimed(0)])          # the segment exists, the connection is warm
        before = _written(broker.proc.pid)
        publish_acked(pub, [untimed(n) for n in range(1, 51)])
        per_reading = (_written(broker.proc.pid) - before) / 50
    finally:
        pub.close()
    assert per_reading < 1024, per_reading       # was 4,096 (a page per reading)
    found = journal.scan(journal.journal_dir(data_dir))
    assert found.torn == 0 and len(found.records) == 51
    assert [json.loads(r.payload)[0]["v"] for r in found.records] == [60 + n / 10 for n in range(51)]
