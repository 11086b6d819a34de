"""The connection manager driven by the fake adapter replaying recorded sessions, with readings
landing in a real SQLite store through ingest().

Glucose records are built from the GLS layout (docs/devices.md, characteristic layouts); the RACP request and response
bytes are the ones in NordicSemiconductor/Android-BLE-Common-Library
`RecordAccessControlPointDataCallbackTest.java` (`06 00 01 01` success, `06 00 01 06` no records,
`06 00 03 01` abort done, `06 00 01 05` invalid operand) and docs/devices.md, characteristic layouts (`01 01`, `01 03 01 lo hi`,
`03 00`). BP vector: Nordic `BloodPressureMeasurementDataCallbackTest` _some.
"""
import asyncio
import json
from datetime import timezone

import pytest

from device_drivers.ble import state
from device_drivers.ble.connections import BleConnections
from device_drivers.ble.fake import FakeAdapter, FakePeripheral
from device_drivers.ble.settings import BleSettings
from edge.core import devices
from edge.core.clock import SystemClock
from edge.core.store import Store

METER, BPM, STRANGER = "C0:26:DA:00:00:01", "C0:26:DA:00:00:02", "C0:26:DA:00:00:99"
FAST = BleSettings(scan_seconds=0.01, pause_seconds=0.01, connect_timeout=0.3, step_timeout=0.3,
                   measurement_wait=0.3, idle_seconds=0.05, session_timeout=3, backoff_base=0.01, backoff_cap=0.05)
SUCCESS, NO_RECORDS, ABORTED, INVALID_OPERAND = "06000101", "06000106", "06000301", "06000105"
BP_SOME = "15bdf00b009ff03c001200"


def record(seq, *, flags=0x03, type_location=0x11, mantissa="5fb0"):
    """A Glucose Measurement: seq, 2025-03-15 08:<seq>:00, offset 0, 95 mg/dL (as kg/L), finger."""
    return f"{flags:02x}{seq:02x}00e907030f08{seq:02x}00" + "0000" + mantissa + f"{type_location:02x}"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "node.db")
    now = SystemClock().now()
    for device_id, kind, address in (("meter1", "glucose", METER), ("bp1", "bp", BPM)):
        devices.add(s, device_id, kind=kind, transport="ble", now=now)
        state.set_address(s, device_id, address, now=now)
    yield s
    s.close()


def meter(*sessions):
    return FakePeripheral(METER, ["1808", "1805"], ["2a18", "2a34", "2a52", "2a51", "2a2b"], list(sessions), "Meter")


def bp_monitor(*sessions):
    return FakePeripheral(BPM, ["1810"], ["2a35", "2a36", "2a49"], list(sessions), "BPM")


def run(store, adapter, *, rounds=1, stop_after=None, settings=FAST):
    conn = BleConnections(store, adapter, settings=settings, clock=SystemClock(), tz=timezone.utc,
                          rand=lambda: 1.0)

    async def go():
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, conn.stop.set)
        for _ in range(rounds):
            await conn.round()
            await asyncio.sleep(0.06)    # past the (tiny) backoff
        return conn
    return asyncio.run(go())


def glucose_rows(store):
    return store.query("SELECT value, unit, status, reason, meta FROM readings WHERE code = '2339-0'"
                       " ORDER BY json_extract(meta, '$.sequence')")


def download(first_request, records, answer):
    return [{"expect_write": "2a52", "data": first_request,
             "reply": [["2a18", record(s)] for s in records] + [["2a52", answer]]}]


def test_full_download_success_stores_every_record_once_and_sets_time(store):
    adapter = FakeAdapter([meter(download("0101", [1, 2, 3, 4, 5], SUCCESS))])
    conn = run(store, adapter)
    rows = glucose_rows(store)
    assert [(r["value"], r["status"]) for r in rows] == [(5.3, "valid")] * 5      # 95 mg/dL -> mmol/L
    assert state.last_sequence(store, "meter1") == 5
    time_writes = [w for w in adapter.writes if w[1] == "2a2b"]
    assert len(time_writes) == 1 and len(bytes.fromhex(time_writes[0][2])) == 10
    assert conn.devices["meter1"].last_result["racp"] == "success"
    assert conn.devices["meter1"].last_error is None and not adapter.mismatches


def test_next_session_asks_only_for_newer_records_and_handles_no_records(store):
    second = download("0103010300", [], NO_RECORDS) + download("0106", [2], SUCCESS)   # newest: one we have
    adapter = FakeAdapter([meter(download("0101", [1, 2], SUCCESS), second)])
    conn = run(store, adapter, rounds=2)
    assert [w[2] for w in adapter.writes if w[1] == "2a52"] == ["0101", "0103010300", "0106"]
    assert conn.devices["meter1"].last_result["racp"] == "no records"
    assert len(glucose_rows(store)) == 2 and state.last_sequence(store, "meter1") == 2
    assert not adapter.mismatches


def test_record_beyond_year_9999_is_kept_rejected_and_the_download_moves_past_it(store):
    # base time 9999-12-31 23:59 plus a time offset of +30 min (GLS 1.0 allows a base time up to
    # year 9999, the offset takes it past the last representable time): this used to raise
    # OverflowError and end every session with that meter, asking for the record again each time.
    bad = "03" + "0300" + "0f270c1f173b00" + "1e00" + "5fb0" + "11"
    first = [{"expect_write": "2a52", "data": "0101",
              "reply": [["2a18", record(1)], ["2a18", record(2)], ["2a18", bad], ["2a52", SUCCESS]]}]
    adapter = FakeAdapter([meter(first, download("0103010400", [4], SUCCESS))])
    conn = run(store, adapter, rounds=2)
    rows = glucose_rows(store)
    assert [(json.loads(r["meta"])["sequence"], r["status"]) for r in rows] == \
        [(1, "valid"), (2, "valid"), (3, "rejected"), (4, "valid")]
    assert rows[2]["value"] is None and "record 3 cannot be read" in rows[2]["reason"]
    assert "9999-12-31" in rows[2]["reason"]
    assert state.last_sequence(store, "meter1") == 4          # the second session asked for >= 4
    assert conn.devices["meter1"].last_result["racp"] == "success" and not adapter.mismatches


def test_meter_whose_memory_was_reset_is_downloaded_again_from_the_start(store):
    def later(seq):   # the same sequence numbers, a day later: different records
        return record(seq).replace("e907030f08", "e907031008")

    second = (download("0103010600", [], NO_RECORDS)
              + [{"expect_write": "2a52", "data": "0106", "reply": [["2a18", later(2)], ["2a52", SUCCESS]]},
                 {"expect_write": "2a52", "data": "0101",
                  "reply": [["2a18", later(1)], ["2a18", later(2)], ["2a52", SUCCESS]]}])
    adapter = FakeAdapter([meter(download("0101", [1, 2, 3, 4, 5], SUCCESS), second)])
    conn = run(store, adapter, rounds=2)
    assert "newest record 2 < stored 5" in conn.devices["meter1"].last_result["meter_reset"]
    assert len(glucose_rows(store)) == 7                   # 5 old + 2 new, none twice
    assert state.last_sequence(store, "meter1") == 2 and not adapter.mismatches


def test_dropped_mid_download_resumes_without_fetching_twice_or_missing(store):
    first = [{"expect_write": "2a52", "data": "0101",
              "reply": [["2a18", record(1)], ["2a18", record(2)], ["2a18", record(3)], ["drop"]]}]
    adapter = FakeAdapter([meter(first, download("0103010400", [4, 5], SUCCESS))])
    conn = run(store, adapter, rounds=1)
    assert len(glucose_rows(store)) == 3 and state.last_sequence(store, "meter1") == 3
    assert "disconnected during the download" in devices.get(store, "meter1")["last_error"]
    assert conn.devices["meter1"].attempt == 1
    conn2 = BleConnections(store, adapter, settings=FAST, clock=SystemClock(), tz=timezone.utc)
    asyncio.run(conn2.round())              # a new process after the drop: progress came from the store
    rows = glucose_rows(store)
    assert [json.loads(r["meta"])["sequence"] for r in rows] == [1, 2, 3, 4, 5]
    last = conn2.devices["meter1"].last_result
    assert (last["stored"], last["duplicates"], last["frames"]) == (2, 0, 2)   # only 4 and 5 came: nothing twice
    assert state.last_sequence(store, "meter1") == 5 and not adapter.mismatches


def test_abort_when_stopping_keeps_what_was_committed(store):
    first = [{"expect_write": "2a52", "data": "0101", "reply": [["2a18", record(1)], ["2a18", record(2)]]},
             {"expect_write": "2a52", "data": "0300", "reply": [["2a52", ABORTED]]}]
    adapter = FakeAdapter([meter(first)])
    conn = run(store, adapter, stop_after=0.1)
    assert conn.devices["meter1"].last_result["racp"] == "aborted"
    assert state.last_sequence(store, "meter1") == 2 and len(glucose_rows(store)) == 2
    assert [w[2] for w in adapter.writes if w[1] == "2a52"] == ["0101", "0300"]


def test_error_response_is_the_devices_last_error(store):
    adapter = FakeAdapter([meter(download("0101", [], INVALID_OPERAND))])
    conn = run(store, adapter)
    assert "invalid operand" in conn.devices["meter1"].last_error
    assert devices.get(store, "meter1")["error_count"] == 1


def test_context_is_merged_and_control_solution_is_rejected_with_reason(store):
    session = [{"expect_write": "2a52", "data": "0101", "reply": [
        ["2a18", record(1, flags=0x13)], ["2a34", "42" + "0100" + "01" + "5df1"],   # meal: preprandial, HbA1c 34.9
        ["2a18", record(2, type_location=0x4a)],                                   # control solution
        ["2a52", SUCCESS]]}]
    run(store, FakeAdapter([meter(session)]))
    rows = glucose_rows(store)
    assert json.loads(rows[0]["meta"])["context"]["meal"] == "preprandial"
    assert rows[1]["status"] == "rejected" and "control solution" in rows[1]["reason"]
    assert rows[1]["value"] is None and json.loads(rows[1]["meta"])["control_solution_value"] == 95.0
    hba1c = store.one("SELECT value, status FROM readings WHERE code = '4548-4'")
    assert hba1c["value"] == 34.9


def test_bp_monitor_indication_stored_and_live_cuff_pressure_not(store):
    session = [{"notify": "2a36", "data": "00d7f000000000"}, {"notify": "2a35", "data": BP_SOME}, {"drop": True}]
    conn = run(store, FakeAdapter([bp_monitor(session)]))
    rows = store.query("SELECT code, value, unit_as_sent, status FROM readings WHERE device_id = 'bp1' ORDER BY code")
    assert [(r["code"], r["value"], r["unit_as_sent"]) for r in rows] == [
        ("8462-4", 83.0, "kPa"), ("8480-6", 142.0, "kPa"), ("8867-4", 60.0, "/min")]   # kPa -> mmHg
    st = conn.devices["bp1"]
    assert st.last_error is None and st.last_reading is not None and st.last_seen is not None
    assert st.last_result["live"]["cuff-pressure"]["value"] == 21.5


def test_indication_never_comes(store):
    conn = run(store, FakeAdapter([bp_monitor([])]))
    st = conn.devices["bp1"]
    assert "no measurement arrived" in st.last_error and st.attempt == 1
    assert store.scalar("SELECT count(*) FROM readings") == 0


def test_device_disappears_between_scan_and_connect_and_mid_session(store):
    adapter = FakeAdapter([bp_monitor([{"connect": "not_found"}], [{"notify": "2a36", "data": "00d7f000000000"},
                                                                    {"drop": True}])])
    conn = run(store, adapter, rounds=2)
    st = conn.devices["bp1"]
    assert st.attempt == 2 and "disconnected before sending a measurement" in st.last_error


def test_bond_lost_says_how_to_fix_it(store):
    adapter = FakeAdapter([bp_monitor([{"bond_lost": "2a35"}], [{"connect": "bond_lost"}])])
    conn = run(store, adapter, rounds=2)
    err = devices.get(store, "bp1")["last_error"]
    assert "bond lost" in err and "re-pair" in err and conn.devices["bp1"].attempt == 2


def test_connect_that_hangs_is_cut_by_its_timeout(store):
    conn = run(store, FakeAdapter([bp_monitor([{"connect": "hang"}])]))
    assert "connecting took longer" in conn.devices["bp1"].last_error


def test_backoff_grows_capped_and_a_success_resets_it(store):
    adapter = FakeAdapter([bp_monitor([], [], [], [], [{"notify": "2a35", "data": BP_SOME}])])
    slow = BleSettings(**{**FAST.__dict__, "measurement_wait": 0.05, "backoff_base": 0.01, "backoff_cap": 0.03})
    clock = [0.0]
    conn = BleConnections(store, adapter, settings=slow, clock=SystemClock(), tz=timezone.utc, rand=lambda: 1.0,
                          monotonic=lambda: clock[0])
    waits = []

    async def go():
        for _ in range(5):
            await conn.round()
            waits.append(round(conn.devices["bp1"].next_try - clock[0], 3))
            clock[0] = conn.devices["bp1"].next_try
    asyncio.run(go())
    assert waits[:4] == [0.01, 0.02, 0.03, 0.03]         # base * 2^n, capped (rand = 1: top of the jitter)
    assert conn.devices["bp1"].attempt == 0              # the fifth session delivered a reading


def test_unregistered_devices_nearby_are_never_connected(store):
    stranger = FakePeripheral(STRANGER, ["1810"], ["2a35"], [[{"notify": "2a35", "data": BP_SOME}]])
    adapter = FakeAdapter([stranger])
    run(store, adapter)
    assert adapter.connects == [] and store.scalar("SELECT count(*) FROM readings") == 0


def test_device_refusing_current_time_still_delivers(store):
    p = FakePeripheral(BPM, ["1810", "1805"], ["2a35", "2a2b"],
                       [[{"refuse_write": "2a2b", "att": 0x80}, {"notify": "2a35", "data": BP_SOME}]])
    conn = run(store, FakeAdapter([p]))
    assert conn.devices["bp1"].last_result["time_written"] is False
    assert store.scalar("SELECT count(*) FROM readings WHERE device_id = 'bp1'") == 3
    assert "did not take the time" in devices.get(store, "bp1")["last_error"]


def test_recorded_session_file_replays(store, tmp_path):
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"peripherals": [{"address": METER, "services": ["1808"],
                                                 "characteristics": ["2a18", "2a52"],
                                                 "sessions": [download("0101", [7], SUCCESS)]}]}))
    run(store, FakeAdapter.from_json(path))
    assert state.last_sequence(store, "meter1") == 7


def test_heart_rate_stream_is_stored_at_most_once_per_interval(store):
    now = SystemClock().now()
    devices.add(store, "hr1", kind="wearable", transport="ble", now=now)
    state.set_address(store, "hr1", "C0:26:DA:00:00:03", now=now)
    frames = [{"notify": "2a37", "data": f"00{72 + i:02x}"} for i in range(5)]   # Nordic _simple layout
    strap = FakePeripheral("C0:26:DA:00:00:03", ["180d"], ["2a37"], [frames + [{"drop": True}]], "HRM")
    conn = run(store, FakeAdapter([strap]))
    assert store.query("SELECT value FROM readings WHERE device_id = 'hr1'") == [{"value": 72.0}]
    assert conn.devices["hr1"].last_result["frames"] == 5


def test_time_goes_to_date_time_when_there_is_no_current_time_service(store):
    # A&D UA-651BLE style: Date Time 0x2A08 inside the BP service (docs/devices.md, real devices and BlueZ), no CTS
    p = FakePeripheral(BPM, ["1810"], ["2a35", "2a08"], [[{"notify": "2a35", "data": BP_SOME}]])
    adapter = FakeAdapter([p])
    conn = run(store, adapter)
    (write,) = [w for w in adapter.writes if w[1] == "2a08"]
    assert len(bytes.fromhex(write[2])) == 7 and conn.devices["bp1"].last_result["time_written"] is True


def test_glucose_meter_without_racp_whose_context_never_comes_still_stores(store):
    # a meter that notifies each new result (no RACP) and announces a context it never sends
    p = FakePeripheral(METER, ["1808"], ["2a18", "2a34"], [[{"notify": "2a18", "data": record(9, flags=0x13)}]])
    run(store, FakeAdapter([p]))
    assert len(glucose_rows(store)) == 1 and state.last_sequence(store, "meter1") == 9


def test_poison_notifications_are_refused_with_reasons_and_the_good_ones_around_them_stored(store):
    """Issue 12: bad bytes from a BP monitor (empty, cut short after the flags, flags promising a
    time stamp and pulse that are not there) never stop the session or the connection manager: each
    is refused with its reason, the good measurement after them is stored, and the next session
    stores again. BP_SOME is Nordic's captured vector (module docstring); the bad ones are it cut."""
    poison = ["", "15", "15bdf0", "1fbdf00b009ff0"]
    first = [*({"notify": "2a35", "data": p} for p in poison), {"notify": "2a35", "data": BP_SOME}, {"drop": True}]
    second = [{"notify": "2a35", "data": BP_SOME.replace("bdf0", "c5f0", 1)}, {"drop": True}]
    conn = run(store, FakeAdapter([bp_monitor(first, second)]), rounds=2)
    rows = store.query("SELECT value, status FROM readings WHERE device_id = 'bp1' AND code = '8480-6'"
                       " ORDER BY value")
    assert [(r["value"], r["status"]) for r in rows] == [(142.0, "valid"), (148.0, "valid")]
    st = conn.devices["bp1"]
    assert st.last_reading is not None
    dev = store.query("SELECT last_error, error_count FROM devices WHERE id = 'bp1'")[0]
    assert dev["error_count"] == 3      # county IT sees the first three bad frames of a session
    assert dev["last_error"] == ("Blood Pressure Measurement: 3 bytes end before diastolic (needs bytes 3-4); "
                                 "flags say it is present")
