"""Driver benchmarks: prints figures, asserts nothing.

    .venv/bin/python bench/drivers.py                 # every section
    .venv/bin/python bench/drivers.py ble --seconds 1 # one section

Structure: SECTIONS maps a section name to a function(args) that prints its own figures. Each
transport adds its section here (a function in this file, or a thin wrapper that calls its own
module); the serial team's ASTM/HL7/line benchmarks live in bench/drivers_serial.py and are
wrapped as the "serial" section below.

BLE section: parse throughput per characteristic (frames/s) on the golden vectors of
tests/test_ble_parsers.py (pure code, no radio, no store), then RACP download throughput: records
through the connection manager and the fake adapter into a real SQLite store via ingest().
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# -- BLE ------------------------------------------------------------------------------------------
BLE_FRAMES = {   # characteristic -> (parser name, vector); vectors and sources as in tests/test_ble_parsers.py
    "0x2A35 blood pressure (full, Nordic)": ("bp.parse", "1E8A005800780000000411142 93B3C0001 2700"),
    "0x2A35 blood pressure (kPa, Nordic)": ("bp.parse", "15BDF00B009FF03C001200"),
    "0x2A36 intermediate cuff (Nordic)": ("bp.parse_intermediate", "156FF000000000 3C001200"),
    "0x2A1C temperature (Nordic)": ("temperature.parse", "06B00E00FEDC070C050B321B04"),
    "0x2A37 heart rate (uint16+RR, Nordic)": ("heart_rate.parse", "1F0101320101000201FFFF"),
    "0x2A18 glucose (Nordic)": ("glucose.parse", "1B0100E307021B0B0A1EFBFF1E00120501"),
    "0x2A34 glucose context (full)": ("glucose.parse_context", "FF0000B3036400041 23C003204D3F459F1"),
    "0x2A9D weight (imperial+BMI)": ("weight.parse", "1F543DE7070C190E1E2D03F500A802"),
    "0x2A5E PLX spot-check (Spezi)": ("plx.parse_spot_check", "0FACF3BEF5E8070B1D1708392040220000 66E3"),
    "0x2A5F PLX continuous (Spezi full)": ("plx.parse_continuous", "1FDEF3CAF3CAF35AF5D4F3B2F220010000007AE3"),
}


def ble(args) -> None:
    from device_drivers.ble import bp, glucose, heart_rate, plx, temperature, weight  # noqa: F401
    modules = {"bp": bp, "glucose": glucose, "heart_rate": heart_rate, "plx": plx, "temperature": temperature,
               "weight": weight}
    received = datetime.now(timezone.utc)
    print(f"BLE parse throughput (one core, {args.seconds:g}s per characteristic):")
    for label, (name, hexdata) in BLE_FRAMES.items():
        module, _, fn = name.partition(".")
        parse = getattr(modules[module], fn)
        data = bytes.fromhex(hexdata.replace(" ", ""))
        parse(data, "bench", received=received)          # a broken vector fails here, loudly
        count, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < args.seconds:
            for _ in range(200):
                parse(data, "bench", received=received)
            count += 200
        print(f"  {label:<40} {count / elapsed:>10,.0f} frames/s   {elapsed / count * 1e6:6.1f} us/frame")
    ble_download(args.records)


def ble_download(records: int) -> None:
    """RACP download of `records` stored glucose records, fake radio, real store, one session."""
    from device_drivers.ble import state
    from device_drivers.ble.connections import BleConnections
    from device_drivers.ble.fake import FakeAdapter, FakePeripheral
    from device_drivers.ble.settings import BleSettings
    from edge.core import devices
    from edge.core.clock import SystemClock
    from edge.core.store import Store

    def record(seq):
        return f"03{seq & 0xFF:02x}{seq >> 8:02x}e907030f08{seq % 60:02x}00" + "0000" + "5fb011"

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        devices.add(store, "meter1", kind="glucose", transport="ble", now=SystemClock().now())
        state.set_address(store, "meter1", "C0:26:DA:00:00:01", now=SystemClock().now())
        replies = [["2a18", record(s)] for s in range(1, records + 1)] + [["2a52", "06000101"]]
        meter = FakePeripheral("C0:26:DA:00:00:01", ["1808"], ["2a18", "2a52"],
                               [[{"expect_write": "2a52", "data": "0101", "reply": replies}]])
        settings = BleSettings(scan_seconds=0.01, step_timeout=30, session_timeout=600)
        conn = BleConnections(store, FakeAdapter([meter]), settings=settings, clock=SystemClock(),
                              tz=timezone.utc)
        t0 = time.perf_counter()
        asyncio.run(conn.round())
        elapsed = time.perf_counter() - t0
        stored = store.scalar("SELECT count(*) FROM readings")
        commits = store.scalar("SELECT count(*) FROM audit WHERE action = 'reading.create'")
        print(f"BLE RACP download: {stored} records stored (of {records}) in {elapsed:.2f}s = "
              f"{stored / elapsed:,.0f} records/s through ingest() (fake radio: on a real link the radio, "
              f"not parsing or storing, sets the pace), last sequence {state.last_sequence(store, 'meter1')}, audit rows {commits}")
        store.close()


# -- serial (ASTM / HL7 / lines): the serial team's script -----------------------------------------
def serial(args) -> None:
    import importlib.util
    path = Path(__file__).with_name("drivers_serial.py")
    spec = importlib.util.spec_from_file_location("drivers_serial", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([])


SECTIONS = {"ble": ble, "serial": serial}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=[],
                   help=f"which sections (default all): {', '.join(SECTIONS)}")
    p.add_argument("--seconds", type=float, default=1.0, help="BLE: time per characteristic")
    p.add_argument("--records", type=int, default=2000, help="BLE: stored records in the RACP download")
    args = p.parse_args(argv)
    for name in args.sections or SECTIONS:
        print(f"== {name} ==")
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
