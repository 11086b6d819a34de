"""IEEE 11073-20601 SFLOAT/FLOAT: two's-complement exponents, every special value, exact rounding.

Sources: byte examples from docs/devices.md, IEEE 11073 numbers, re-checked against NordicSemiconductor/Android-BLE-Common-Library
(`BloodPressureMeasurementDataCallbackTest.java`: `8A 00` = 138, `BD F0` = 18.9, `9F F0` = 15.9;
`TemperatureMeasurementDataCallbackTest.java`: FLOAT `B0 0E 00 FE` = 37.60) and StanfordSpezi/SpeziBluetooth
(`PLXTests.swift`: `E8 F3` = 100.0, `84 F3` = 90.0, `57 F0` = 8.7). Special values: IEEE 11073-20601
as implemented in signove/antidote `src/util/bytelib.c` (reserved mantissas tested before sign extension).
"""
import pytest

from device_drivers.ble import ieee11073 as n


def sf(hexbytes):
    return n.sfloat(int.from_bytes(bytes.fromhex(hexbytes), "little"))


def fl(hexbytes):
    return n.float32(int.from_bytes(bytes.fromhex(hexbytes), "little"))


@pytest.mark.parametrize("raw,value", [
    ("8A 00", 138.0),        # Nordic BPM full: systolic 138 mmHg
    ("BD F0", 18.9),         # Nordic BPM some: 18.9 kPa (mantissa 189, exponent -1)
    ("9F F0", 15.9),         # Nordic BPM some: MAP 15.9 kPa
    ("0B 00", 11.0),
    ("6F F0", 11.1),         # Nordic ICP some: 11.1 kPa
    ("E8 F3", 100.0),        # Spezi PLX: SpO2 100.0 (1000 x 10^-1)
    ("84 F3", 90.0),         # Spezi PLX: PR 90.0
    ("57 F0", 8.7),          # Spezi PLX: PAI 8.7
    ("5F B0", 0.00095),      # glucose 95 mg/dL in kg/L (95 x 10^-5), docs/devices.md, characteristic layouts [C]
    ("35 C0", 0.0053),       # 5.3 mmol/L in mol/L (53 x 10^-4) [C]
    ("FF 0F", -1.0),         # mantissa 0xFFF = -1 (sign extension)
    ("02 10", 20.0),         # positive exponent: 2 x 10^1
    ("FD 07", 2045.0),       # largest normal mantissa (MDER_SFLOAT_MANTISSA_MAX 0x07FD)
    ("03 08", -2045.0),      # smallest normal mantissa
    ("01 80", 1e-8),         # exponent -8
])
def test_sfloat_values(raw, value):
    got = sf(raw)
    assert got.special is None and got.reason is None
    assert got.value == value
    assert repr(got.value) == repr(value)        # no 18.900000000000002


@pytest.mark.parametrize("raw,name", [
    ("FF 07", "NaN"), ("00 08", "NRes"), ("FE 07", "+INF"), ("02 08", "-INF"), ("01 08", "reserved"),
    ("FF F7", "NaN"),   # special mantissas are special whatever the exponent (antidote)
    ("00 38", "NRes"),
])
def test_sfloat_specials_are_no_value_with_reason(raw, name):
    got = sf(raw)
    assert got.value is None and got.special == name
    assert name in got.reason


@pytest.mark.parametrize("raw,value", [
    ("B0 0E 00 FE", 37.6),   # Nordic HTM: 3760 x 10^-2
    ("6D 01 00 FF", 36.5),   # 365 x 10^-1 [C]
    ("FF FF FF 00", -1.0),
    ("FD FF 7F 00", 8388605.0),   # largest normal mantissa 0x7FFFFD
    ("01 00 00 02", 100.0),
    ("7A 02 00 FD", 0.634),
])
def test_float_values(raw, value):
    got = fl(raw)
    assert got.special is None
    assert got.value == value and repr(got.value) == repr(value)


@pytest.mark.parametrize("raw,name", [
    ("FF FF 7F 00", "NaN"), ("00 00 80 00", "NRes"), ("FE FF 7F 00", "+INF"), ("02 00 80 00", "-INF"),
    ("01 00 80 00", "reserved"), ("FF FF 7F FE", "NaN"),
])
def test_float_specials_are_no_value_with_reason(raw, name):
    got = fl(raw)
    assert got.value is None and got.special == name and got.reason


def test_rounding_keeps_exponent_precision_for_every_sfloat():
    for raw in range(0x10000):
        got = n.sfloat(raw)
        if got.special:
            continue
        decimals = max(0, -got.exponent)
        assert got.value == round(got.mantissa * 10.0 ** got.exponent, decimals)
        assert len(repr(got.value).split(".")[-1].rstrip("0")) <= max(decimals, 1) or "e" in repr(got.value)


def test_scaling_by_powers_of_ten_is_exact():
    assert sf("5F B0").times_ten_to(5) == 95.0          # kg/L -> mg/dL
    assert sf("35 C0").times_ten_to(3) == 5.3           # mol/L -> mmol/L
    assert sf("FF 07").times_ten_to(5) is None


def test_encoders_round_trip():
    for m, e in ((138, 0), (189, -1), (-5, -3), (2045, 7)):
        assert n.sfloat(int.from_bytes(n.encode_sfloat(m, e), "little")) == n.Number(m, e)
        assert n.float32(int.from_bytes(n.encode_float(m * 1000, e), "little")) == n.Number(m * 1000, e)


def test_out_of_range_raw_is_a_programming_error():
    with pytest.raises(ValueError):
        n.sfloat(0x10000)
    with pytest.raises(ValueError):
        n.float32(-1)
