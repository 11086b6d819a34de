"""Every BLE characteristic's readings go through ingest() into a real SQLite store in the code's
canonical unit: the units the parsers emit are ones edge.core.codes converts (kPa, degF, lb, in,
m, mg/dL, mol/L...). Vectors and sources as in test_ble_parsers.py."""
import pytest

from device_drivers.ble import bp, glucose, heart_rate, plx, temperature, weight
from edge.core import devices
from edge.core.clock import SystemClock
from edge.core.ingest import ingest
from edge.core.store import Store

H = bytes.fromhex


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "node.db")
    devices.add(s, "d1", kind="other", transport="ble", now=SystemClock().now())
    yield s
    s.close()


@pytest.mark.parametrize("parse,frame,expect", [
    (bp.parse, "15 BDF0 0B00 9FF0 3C00 1200",                                 # Nordic BPM _some, kPa
     {"8480-6": (142.0, "mm[Hg]"), "8462-4": (83.0, "mm[Hg]"), "8867-4": (60.0, "/min")}),
    (bp.parse, "00 7800 5000 5D00", {"8480-6": (120.0, "mm[Hg]"), "8462-4": (80.0, "mm[Hg]")}),
    (temperature.parse, "06 B00E00FE DC07 0C 05 0B 32 1B 04", {"8310-5": (37.6, "Cel")}),   # Nordic
    (temperature.parse, "01 DA0300FF", {"8310-5": (37.0, "Cel")}),                 # 98.6 degF [C]
    (heart_rate.parse, "00 55", {"8867-4": (85.0, "/min")}),                         # Nordic
    (glucose.parse, "03 0500 E807 03 0F 08 1E 00 0000 5FB0 11", {"2339-0": (5.3, "mmol/L")}),   # 95 mg/dL
    (glucose.parse, "07 0600 E807 03 0F 08 1E 00 0000 35C0 11", {"2339-0": (5.3, "mmol/L")}),
    (weight.parse, "1F 543D E707 0C 19 0E 1E 2D 03 F500 A802",                      # bluetooth-sig-python
     {"29463-7": (71.2, "kg"), "39156-5": (24.5, "kg/m2"), "8302-2": (172.7, "cm")}),
    (weight.parse, "0E B036 E807 03 0F 08 1E 00 05 F500 D606",
     {"29463-7": (70.0, "kg"), "39156-5": (24.5, "kg/m2"), "8302-2": (175.0, "cm")}),
    (plx.parse_spot_check, "0F ACF3 BEF5 E807 0B 1D 17 08 39 2040 220000 66E3",     # Spezi
     {"2708-6": (94.0, "%"), "8867-4": (147.0, "/min")}),
    (plx.parse_continuous, "00 E8F3 84F3", {"2708-6": (100.0, "%"), "8867-4": (90.0, "/min")}),
])
def test_readings_are_stored_valid_in_canonical_units(store, parse, frame, expect):
    outcomes = ingest(store, parse(H(frame), "d1"))
    assert all(o.status == "valid" for o in outcomes), [o.reason for o in outcomes]
    rows = store.query("SELECT code, value, unit FROM readings")
    assert {r["code"]: (r["value"], r["unit"]) for r in rows} == expect


def test_special_value_is_stored_rejected_with_its_reason(store):
    (o,) = ingest(store, temperature.parse(H("00 FFFF7F00"), "d1"))
    assert o.status == "rejected" and "NaN" in o.reason


def test_same_glucose_record_twice_is_stored_once(store):
    frame = H("03 0500 E807 03 0F 08 1E 00 0000 5FB0 11")
    ingest(store, glucose.parse(frame, "d1"))
    (o,) = ingest(store, glucose.parse(frame, "d1"))
    assert o.duplicate and store.scalar("SELECT count(*) FROM readings") == 1
