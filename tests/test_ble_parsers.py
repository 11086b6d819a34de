"""Golden byte vectors for every BLE health characteristic, with their sources.

Sources (all read at the commits named in docs/devices.md or the read_file ids below):
- NORDIC = NordicSemiconductor/Android-BLE-Common-Library, ble-common/src/test/java/no/nordicsemi/android/
  ble/common/callback/{bps/BloodPressureMeasurementDataCallbackTest, bps/IntermediateCuffPressureDataCallbackTest,
  ht/TemperatureMeasurementDataCallbackTest, hr/HeartRateMeasurementDataCallbackTest,
  glucose/GlucoseMeasurementDataCallbackTest, glucose/GlucoseMeasurementContextDataCallbackTest}.java
- SPEZI = StanfordSpezi/SpeziBluetooth Tests/SpeziBluetoothServicesTests/PLXTests.swift
- SIGPY = RonanB96/bluetooth-sig-python tests/gatt/characteristics/test_weight_measurement.py (integer
  fields only: that project's SFLOAT decoder is non-standard, docs/devices.md, IEEE 11073 pitfalls)
- SPEC = built by us from the layout in the Bluetooth SIG service specification (BLS, HTS, HRS, GLS,
  WSS, PLXS 1.0) as summarised in docs/devices.md, characteristic layouts, with values we chose; marked [C].
"""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from device_drivers.ble import bp, glucose, heart_rate, plx, temperature, weight
from device_drivers.ble.errors import (BloodPressureFrameError, GlucoseFrameError, HeartRateFrameError,
                                       PlxFrameError, TemperatureFrameError, WeightFrameError)
from device_drivers.errors import FrameError

H = bytes.fromhex
UTC = timezone.utc


def values(readings):
    return {r.code: r.value for r in readings}


# -- Blood pressure 0x2A35 / 0x2A36 ----------------------------------------------------------------
def test_bp_nordic_full_mmhg_unknown_year_pulse_user_status():
    rs = bp.parse(H("1E 8A00 5800 7800 0000 04 11 14 29 3B 3C00 01 2700"), "bp1")   # NORDIC _full
    assert values(rs) == {"8480-6": 138.0, "8462-4": 88.0, "8867-4": 60.0}
    assert {r.unit for r in rs[:2]} == {"mm[Hg]"} and rs[2].unit == "/min"
    sys_ = rs[0]
    assert sys_.meta["mean_arterial_pressure"] == 120.0
    assert sys_.device_time is None and sys_.meta["device_time_as_sent"] == "????-04-17 20:41:59"
    assert sys_.meta["user_id"] == 1
    assert sys_.meta["status_flags"] == ["body_movement", "cuff_too_loose", "irregular_pulse", "improper_position"]
    assert sys_.meta["pulse_rate_range"] == "within_range"


def test_bp_nordic_some_kpa_with_pulse_range_below():
    rs = bp.parse(H("15 BDF0 0B00 9FF0 3C00 1200"), "bp1")                          # NORDIC _some
    assert values(rs) == {"8480-6": 18.9, "8462-4": 11.0, "8867-4": 60.0}
    assert rs[0].unit == "kPa" and rs[0].meta["mean_arterial_pressure"] == 15.9
    assert rs[0].meta["status_flags"] == ["cuff_too_loose"]
    assert rs[0].meta["pulse_rate_range"] == "below_lower_limit"
    assert "user_id" not in rs[0].meta


def test_bp_nordic_minimal():
    rs = bp.parse(H("00 BDF0 0B00 9FF0"), "bp1")                                    # NORDIC _minimal
    assert values(rs) == {"8480-6": 18.9, "8462-4": 11.0} and rs[0].unit == "mm[Hg]"


def test_bp_with_timestamp_in_clinic_zone():
    # [C] SPEC: 120/80 mmHg, MAP 93, 2024-03-15 08:30:00, pulse 72 (docs/devices.md, characteristic layouts)
    rs = bp.parse(H("06 7800 5000 5D00 E807 03 0F 08 1E 00 4800"), "bp1", tz=ZoneInfo("Asia/Shanghai"))
    assert values(rs) == {"8480-6": 120.0, "8462-4": 80.0, "8867-4": 72.0}
    assert rs[0].device_time == datetime(2024, 3, 15, 0, 30, tzinfo=UTC)
    # the same stored measurement sent again keys the same: stored once
    again = bp.parse(H("06 7800 5000 5D00 E807 03 0F 08 1E 00 4800"), "bp1", tz=ZoneInfo("Asia/Shanghai"),
                     received=datetime.now(UTC))
    assert [r.id for r in rs] == [r.id for r in again]


def test_bp_without_timestamp_two_identical_values_are_two_readings():
    t0 = datetime(2026, 1, 1, 8, tzinfo=UTC)
    a = bp.parse(H("00 7800 5000 5D00"), "bp1", received=t0)
    b = bp.parse(H("00 7800 5000 5D00"), "bp1", received=t0 + timedelta(minutes=2))
    assert a[0].id != b[0].id


def test_bp_special_values_are_no_value():
    rs = bp.parse(H("00 FF07 0008 FF07"), "bp1")        # systolic NaN, diastolic NRes  [C]
    assert [r.value for r in rs] == [None, None]
    assert "NaN" in rs[0].no_value_reason and "NRes" in rs[1].no_value_reason


@pytest.mark.parametrize("frame", ["01 02 03 04 05 06", "03 02 03 04 05 06 07"])      # NORDIC invalid
def test_bp_truncated_is_rejected(frame):
    with pytest.raises(BloodPressureFrameError, match="Blood Pressure Measurement"):
        bp.parse(H(frame), "bp1")


@pytest.mark.parametrize("frame,value,unit", [
    ("1E 0400 0000 0000 0000 04 11 14 29 3B 3C00 01 2700", 4.0, "mm[Hg]"),           # NORDIC ICP _full
    ("15 6FF0 0000 0000 3C00 1200", 11.1, "kPa"),                                     # NORDIC ICP _some
    ("00 D7F0 0000 0000", 21.5, "mm[Hg]"),                                            # NORDIC ICP _minimal
])
def test_intermediate_cuff_pressure_is_a_live_value(frame, value, unit):
    (r,) = bp.parse_intermediate(H(frame), "bp1")
    assert (r.value, r.unit, r.meta["intermediate"]) == (value, unit, True)


def encode_bp(flags):
    out = bytes([flags]) + H("8A00 5800 7800")
    out += H("E807 03 0F 08 1E 00") if flags & 2 else b""
    out += H("3C00") if flags & 4 else b""
    out += b"\x07" if flags & 8 else b""
    out += H("0900") if flags & 16 else b""   # body movement, pulse above upper limit
    return out


@pytest.mark.parametrize("flags", range(32))
def test_bp_every_flag_combination(flags):
    rs = bp.parse(encode_bp(flags), "bp1")                                             # [C] SPEC
    assert rs[0].unit == ("kPa" if flags & 1 else "mm[Hg]")
    assert (rs[0].device_time is not None) == bool(flags & 2)
    assert ("8867-4" in values(rs)) == bool(flags & 4)
    assert rs[0].meta.get("user_id") == (7 if flags & 8 else None)
    if flags & 16:
        assert rs[0].meta["status_flags"] == ["body_movement"]
        assert rs[0].meta["pulse_rate_range"] == "above_upper_limit"
    with pytest.raises(BloodPressureFrameError):
        bp.parse(encode_bp(flags)[:-1], "bp1")


# -- Temperature 0x2A1C ----------------------------------------------------------------------------
def test_temperature_nordic_celsius_timestamp_finger():
    (r,) = temperature.parse(H("06 B00E00FE DC07 0C 05 0B 32 1B 04"), "t1")            # NORDIC
    assert (r.code, r.value, r.unit) == ("8310-5", 37.6, "Cel")
    assert r.device_time == datetime(2012, 12, 5, 11, 50, 27, tzinfo=UTC)
    assert r.meta["site"] == "finger"


def test_temperature_nordic_missing_type_is_rejected():
    with pytest.raises(TemperatureFrameError, match="temperature type"):
        temperature.parse(H("06 B00E00FE DC07 0C 05 0B 32 1B"), "t1")                  # NORDIC invalid


def test_temperature_fahrenheit():
    (r,) = temperature.parse(H("01 DA0300FF"), "t1")                                    # [C] 98.6 degF
    assert (r.value, r.unit) == (98.6, "[degF]")


def test_temperature_sfloat_fallback_of_cheap_thermometers():
    (r,) = temperature.parse(H("00 6DF1"), "t1")          # [C] 36.5 as SFLOAT (docs/devices.md, characteristic layouts)
    assert r.value == 36.5 and r.meta["sfloat_fallback"]


@pytest.mark.parametrize("raw,name", [("FFFF7F00", "NaN"), ("00008000", "NRes"), ("FEFF7F00", "+INF"),
                                      ("02008000", "-INF"), ("01008000", "reserved")])
def test_temperature_float_specials(raw, name):
    (r,) = temperature.parse(H("00" + raw), "t1")
    assert r.value is None and name in r.no_value_reason


@pytest.mark.parametrize("flags", range(8))
def test_temperature_every_flag_combination(flags):
    frame = bytes([flags]) + H("6D0100FF") + (H("E807 03 0F 08 1E 00") if flags & 2 else b"") + \
        (b"\x06" if flags & 4 else b"")                                                 # [C] SPEC
    (r,) = temperature.parse(frame, "t1")
    assert r.value == 36.5 and r.unit == ("[degF]" if flags & 1 else "Cel")
    assert (r.device_time is not None) == bool(flags & 2)
    assert r.meta.get("site") == ("mouth" if flags & 4 else None)


# -- Heart rate 0x2A37 -----------------------------------------------------------------------------
@pytest.mark.parametrize("frame,rate,meta", [
    ("00 55", 85, {}),                                                                  # NORDIC _simple
    ("04 FF", 255, {"contact": False}),                                                 # NORDIC _noContact
    ("1E 55 3200 2100", 85, {"contact": True, "energy_expended_kj": 50, "rr_intervals_1024": [33]}),
    ("1F 0101 3201 0100 0201 FFFF", 257, {"contact": True, "energy_expended_kj": 306,
                                          "rr_intervals_1024": [1, 258, 65535]}),      # NORDIC _uint16
])
def test_heart_rate_nordic(frame, rate, meta):
    (r,) = heart_rate.parse(H(frame), "hr1")
    assert (r.value, r.unit) == (rate, "/min")
    for k, v in meta.items():
        assert r.meta[k] == v


@pytest.mark.parametrize("frame", ["17 0101", "10 55 21", "01 55", ""])      # NORDIC invalid + [C]
def test_heart_rate_truncated(frame):
    with pytest.raises(HeartRateFrameError):
        heart_rate.parse(H(frame), "hr1")


@pytest.mark.parametrize("flags", range(32))
def test_heart_rate_every_flag_combination(flags):
    frame = bytes([flags]) + (H("4800") if flags & 1 else b"\x48") + (H("1000") if flags & 8 else b"") + \
        (H("0004 0002") if flags & 16 else b"")                                         # [C] SPEC
    (r,) = heart_rate.parse(frame, "hr1")
    assert r.value == 72
    assert r.meta.get("contact") == (bool(flags & 2) if flags & 4 else None)
    assert r.meta.get("rr_intervals_s") == ([1.0, 0.5] if flags & 16 else None)


# -- Glucose 0x2A18 / 0x2A34 -----------------------------------------------------------------------
def test_glucose_nordic_record_with_annunciation():
    (r,) = glucose.parse(H("1B 0100 E307 02 1B 0B 0A 1E FBFF 1E00 12 0501"), "g1")    # NORDIC
    assert r.meta["sequence"] == 1 and r.meta["context_follows"]
    assert r.device_time == datetime(2019, 2, 27, 11, 5, 30, tzinfo=UTC)                # 11:10:30 - 5 min
    assert r.meta["sample_type"] == "capillary_plasma" and r.meta["sample_location"] == "finger"
    assert r.meta["annunciation_flags"] == ["battery_low", "sample_size_insufficient", "temperature_too_low"]
    assert r.value is None and "sample size insufficient" in r.no_value_reason           # meter says unusable
    assert r.unit == "mg/dL"


def test_glucose_nordic_missing_time_offset_is_rejected():
    with pytest.raises(GlucoseFrameError):
        glucose.parse(H("1B 0000 E207 04 1A 0B 09 1E 1E00 12 0501"), "g1")               # NORDIC invalid


def test_glucose_kg_per_litre_is_mg_per_dl():
    (r,) = glucose.parse(H("03 0500 E807 03 0F 08 1E 00 0000 5FB0 11"), "g1")          # [C] docs/devices.md, characteristic layouts
    assert (r.value, r.unit) == (95.0, "mg/dL") and r.meta["sample_type"] == "capillary_whole_blood"
    assert r.source_key == "gls-seq:5|2024-03-15 08:30:00"


def test_glucose_mol_per_litre_is_mmol_per_l():
    (r,) = glucose.parse(H("07 0600 E807 03 0F 08 1E 00 0000 35C0 11"), "g1")          # [C]
    assert (r.value, r.unit) == (5.3, "mmol/L")


def test_glucose_control_solution_is_not_a_patient_value():
    (r,) = glucose.parse(H("02 0700 E807 03 0F 08 1E 00 5FB0 4A"), "g1")               # [C] type 10, loc 4
    assert r.value is None and "control solution" in r.no_value_reason
    assert r.meta["control_solution_value"] == 95.0


def test_glucose_record_without_result_gives_nothing():
    assert glucose.parse(H("00 0800 E807 03 0F 08 1E 00"), "g1") == []                 # [C]


@pytest.mark.parametrize("flags", range(32))
def test_glucose_every_flag_combination(flags):
    frame = bytes([flags]) + H("0900 E807 03 0F 08 1E 00") + (H("0A00") if flags & 1 else b"") + \
        ((H("35C0") if flags & 4 else H("5FB0")) + b"\x11" if flags & 2 else b"") + \
        (H("0100") if flags & 8 else b"")                                               # [C] SPEC
    rs = glucose.parse(frame, "g1")
    if not flags & 2:
        assert rs == []
        return
    (r,) = rs
    assert (r.value, r.unit) == ((5.3, "mmol/L") if flags & 4 else (95.0, "mg/dL"))
    assert r.device_time.minute == (40 if flags & 1 else 30)
    assert r.meta.get("annunciation_flags") == (["battery_low"] if flags & 8 else None)
    assert r.meta["context_follows"] == bool(flags & 16)


# Field values from NORDIC GlucoseMeasurementContextDataCallbackTest _full (dinner, 100 carbs, casual,
# HCP + minor issues, 60 s exercise at 50 %, long-acting insulin, HbA1c 34.5 %); SFLOAT bytes are ours [C].
CONTEXT_FULL = H("FF 0000 B3 03 6400 04 12 3C00 32 04 D3F4 59F1")


def test_glucose_context_nordic_full():
    ctx = glucose.parse_context_fields(CONTEXT_FULL)
    assert ctx.sequence == 0
    assert ctx.fields == {"extended_flags": 0xB3, "carbohydrate": "dinner", "carbohydrate_kg": 100.0,
                          "meal": "casual", "tester": "health_care_professional", "health": "minor_health_issues",
                          "exercise_s": 60, "exercise_intensity_pct": 50, "medication": "long_acting_insulin",
                          "medication_l": 123.5, "hba1c_pct": 34.5}
    (r,) = glucose.parse_context(CONTEXT_FULL, "g1")
    assert (r.code, r.value, r.unit) == ("4548-4", 34.5, "%")


def test_glucose_context_nordic_empty_and_truncated():
    assert glucose.parse_context_fields(H("00 0100") + bytes(14)).fields == {}           # NORDIC _empty
    with pytest.raises(GlucoseFrameError):
        glucose.parse_context(CONTEXT_FULL[:5], "g1")                                    # NORDIC invalid


# -- Weight 0x2A9D ---------------------------------------------------------------------------------
@pytest.mark.parametrize("frame,expect", [
    ("00 B036", {"29463-7": (70.0, "kg")}),                                              # SIGPY test 1
    ("01 543D", {"29463-7": (157.0, "[lb_av]")}),                                        # SIGPY test 2
    ("02 B036 E707 0C 19 0E 1E 2D", {"29463-7": (70.0, "kg")}),                          # SIGPY test 3
    # SIGPY test 6: imperial, time, user 3, BMI 24.5, 68.0 in; its bit 4 is reserved in WSS and ignored
    ("1F 543D E707 0C 19 0E 1E 2D 03 F500 A802", {"29463-7": (157.0, "[lb_av]"), "39156-5": (24.5, "kg/m2"),
                                                 "8302-2": (68.0, "[in_i]")}),
    ("0E B036 E807 03 0F 08 1E 00 05 F500 D606", {"29463-7": (70.0, "kg"), "39156-5": (24.5, "kg/m2"),
                                                 "8302-2": (1.75, "m")}),                # [C] SPEC
])
def test_weight_vectors(frame, expect):
    rs = weight.parse(H(frame), "w1")
    assert {r.code: (r.value, r.unit) for r in rs} == expect


def test_weight_bmi_without_height_is_rejected():
    # SIGPY test 4 sends BMI without height; WSS bit 3 means "BMI and height": the frame is short.
    with pytest.raises(WeightFrameError, match="height"):
        weight.parse(H("0C B036 05 F500"), "w1")


def test_weight_unsuccessful_and_timestamp():
    (r,) = weight.parse(H("00 FFFF"), "w1")
    assert r.value is None and "unsuccessful" in r.no_value_reason
    (r,) = weight.parse(H("02 B036 E707 0C 19 0E 1E 2D"), "w1")
    assert r.device_time == datetime(2023, 12, 25, 14, 30, 45, tzinfo=UTC)


@pytest.mark.parametrize("flags", range(16))
def test_weight_every_flag_combination(flags):
    frame = bytes([flags]) + H("B036") + (H("E807 03 0F 08 1E 00") if flags & 2 else b"") + \
        (b"\x02" if flags & 4 else b"") + (H("F500 D606") if flags & 8 else b"")        # [C] SPEC
    rs = weight.parse(frame, "w1")
    assert rs[0].value == (140.0 if flags & 1 else 70.0)
    assert len(rs) == (3 if flags & 8 else 1)
    assert rs[0].meta.get("user_id") == (2 if flags & 4 else None)


# -- Pulse oximetry 0x2A5E / 0x2A5F ----------------------------------------------------------------
def test_plx_spezi_spot_check():
    rs = plx.parse_spot_check(H("0F ACF3 BEF5 E807 0B 1D 17 08 39 2040 220000 66E3"), "o1")   # SPEZI
    assert values(rs) == {"2708-6": 94.0, "8867-4": 147.0}
    r = rs[0]
    assert r.device_time == datetime(2024, 11, 29, 23, 8, 57, tzinfo=UTC)
    assert r.meta["measurement_status_flags"] == ["measurement_ongoing", "questionable_measurement"]
    assert r.meta["device_status_flags"] == ["equipment_malfunction", "low_perfusion"]
    assert r.meta["pulse_amplitude_index_pct"] == 8.7


@pytest.mark.parametrize("frame,spo2,pr,meta", [
    ("00 E8F3 84F3", 100.0, 90.0, {}),                                                   # SPEZI very simple
    ("00 6400 5A00", 100.0, 90.0, {}),                                                   # SPEZI (exp 0 form)
    ("1C 5F00 5A00 2000 000000 57F0", 95.0, 90.0,
     {"measurement_status_flags": ["measurement_ongoing"], "pulse_amplitude_index_pct": 8.7}),   # SPEZI
    ("1F DEF3 CAF3 CAF3 5AF5 D4F3 B2F2 2001 000000 7AE3", 99.0, 97.0,
     {"spo2_fast": 97.0, "pr_fast": 137.0, "spo2_slow": 98.0, "pr_slow": 69.0, "pulse_amplitude_index_pct": 8.9,
      "measurement_status_flags": ["measurement_ongoing", "fully_qualified_data"]}),            # SPEZI full
])
def test_plx_spezi_continuous(frame, spo2, pr, meta):
    rs = plx.parse_continuous(H(frame), "o1")
    assert values(rs) == {"2708-6": spo2, "8867-4": pr}
    for k, v in meta.items():
        assert rs[0].meta[k] == v


def test_plx_invalid_measurement_has_no_value():
    rs = plx.parse_spot_check(H("02 6200 4800 0080"), "o1")                             # [C] status bit 15
    assert [r.value for r in rs] == [None, None] and "invalid measurement" in rs[0].no_value_reason


def test_plx_clock_not_set_drops_device_time():
    rs = plx.parse_spot_check(H("11 6200 4800 D007 01 01 00 00 00"), "o1")              # [C] flags bit 4
    assert rs[0].device_time is None and rs[0].meta["device_clock_not_set"]


@pytest.mark.parametrize("flags", range(32))
def test_plx_spot_check_every_flag_combination(flags):
    frame = bytes([flags]) + H("6200 4800") + (H("E807 03 0F 08 1E 00") if flags & 1 else b"") + \
        (H("2000") if flags & 2 else b"") + (H("200000") if flags & 4 else b"") + \
        (H("57F0") if flags & 8 else b"")                                               # [C] SPEC
    rs = plx.parse_spot_check(frame, "o1")
    assert values(rs) == {"2708-6": 98.0, "8867-4": 72.0}
    assert (rs[0].device_time is not None) == bool(flags & 1 and not flags & 16)
    assert rs[0].meta.get("device_status_flags") == (["low_perfusion"] if flags & 4 else None)
    assert rs[0].meta.get("pulse_amplitude_index_pct") == (8.7 if flags & 8 else None)
    with pytest.raises(PlxFrameError):
        plx.parse_spot_check(frame[:-1], "o1")


@pytest.mark.parametrize("flags", range(32))
def test_plx_continuous_every_flag_combination(flags):
    frame = bytes([flags]) + H("6200 4800") + (H("6100 4600") if flags & 1 else b"") + \
        (H("6000 4400") if flags & 2 else b"") + (H("2000") if flags & 4 else b"") + \
        (H("200000") if flags & 8 else b"") + (H("57F0") if flags & 16 else b"")         # [C] SPEC
    rs = plx.parse_continuous(frame, "o1")
    assert values(rs) == {"2708-6": 98.0, "8867-4": 72.0}
    assert rs[0].meta.get("spo2_fast") == (97.0 if flags & 1 else None)
    assert rs[0].meta.get("pr_slow") == (68.0 if flags & 2 else None)
    with pytest.raises(PlxFrameError):
        plx.parse_continuous(frame[:-1], "o1")


def test_bias_encoded_spo2_is_not_read_as_98():
    # docs/devices.md, IEEE 11073 pitfalls: bluetooth-sig-python encodes SpO2 98 % as `62 80` (exponent with a bias);
    # the standard decoder reads 98 x 10^-8, which ingest then rejects as implausible.
    rs = plx.parse_spot_check(H("00 6280 4800"), "o1")
    assert rs[0].value == 9.8e-07


def test_every_parser_error_is_a_frame_error():
    for exc in (BloodPressureFrameError, TemperatureFrameError, HeartRateFrameError, GlucoseFrameError,
                WeightFrameError, PlxFrameError):
        assert issubclass(exc, FrameError)
