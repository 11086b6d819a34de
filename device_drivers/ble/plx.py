"""Pulse oximetry: PLX Spot-check Measurement (0x2A5E, indicated) and Continuous (0x2A5F, notified).

Spot-check (PLXS 1.0): flags | SpO2 SFLOAT | PR SFLOAT | [Date Time] | [measurement status uint16] |
[device and sensor status uint24] | [pulse amplitude index SFLOAT]. Flags: bit0 time stamp,
bit1 measurement status, bit2 device and sensor status, bit3 PAI, bit4 device clock not set.
Continuous: flags | SpO2PR-Normal (2 SFLOAT) | [SpO2PR-Fast] | [SpO2PR-Slow] | [measurement status] |
[device and sensor status] | [PAI]. Flags: bit0 fast, bit1 slow, bit2 status, bit3 device status, bit4 PAI.
A measurement the oximeter itself flags invalid (status bit 15) is kept with no value and the reason.
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from edge.core.reading import Reading

from .errors import PlxFrameError
from .fields import Cursor, DeviceTime, bits, source_key

SPOT_CHECK, CONTINUOUS = "2a5e", "2a5f"
SPO2, PULSE = "2708-6", "8867-4"
MEASUREMENT_STATUS = {5: "measurement_ongoing", 6: "early_estimated_data", 7: "validated_data",
                      8: "fully_qualified_data", 9: "data_from_measurement_storage", 10: "data_for_demonstration",
                      11: "data_for_testing", 12: "calibration_ongoing", 13: "measurement_unavailable",
                      14: "questionable_measurement", 15: "invalid_measurement"}
DEVICE_STATUS = {0: "extended_display_update_ongoing", 1: "equipment_malfunction",
                 2: "signal_processing_irregularity", 3: "inadequate_signal", 4: "poor_signal",
                 5: "low_perfusion", 6: "erratic_signal", 7: "nonpulsatile_signal", 8: "questionable_pulse",
                 9: "signal_analysis_ongoing", 10: "sensor_interference", 11: "sensor_unconnected",
                 12: "unknown_sensor_connected", 13: "sensor_displaced", 14: "sensor_malfunctioning",
                 15: "sensor_disconnected"}
NOT_PATIENT = {"invalid_measurement", "measurement_unavailable", "data_for_demonstration", "data_for_testing"}


def parse_spot_check(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
                     received: datetime | None = None) -> list[Reading]:
    c = Cursor(data, PlxFrameError, "PLX Spot-check Measurement")
    flags = c.u8("flags")
    spo2, pr = c.sfloat("SpO2"), c.sfloat("pulse rate")
    t = c.date_time("time stamp", tz) if flags & 0x01 else DeviceTime(None, "")
    meta: dict = {"characteristic": SPOT_CHECK, "flags": flags}
    if t.text:
        meta["device_time_as_sent"] = t.text
    if flags & 0x10 and t.when is not None:   # the oximeter says its clock was never set
        meta["device_clock_not_set"] = True
        t = DeviceTime(None, t.text)
    _status(c, flags & 0x02, flags & 0x04, flags & 0x08, meta)
    return _readings(c, device_id, spo2, pr, t, meta, received, SPOT_CHECK)


def parse_continuous(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
                     received: datetime | None = None) -> list[Reading]:
    c = Cursor(data, PlxFrameError, "PLX Continuous Measurement")
    flags = c.u8("flags")
    spo2, pr = c.sfloat("SpO2 (normal)"), c.sfloat("pulse rate (normal)")
    meta: dict = {"characteristic": CONTINUOUS, "flags": flags}
    if flags & 0x01:
        meta["spo2_fast"], meta["pr_fast"] = c.sfloat("SpO2 (fast)").value, c.sfloat("pulse rate (fast)").value
    if flags & 0x02:
        meta["spo2_slow"], meta["pr_slow"] = c.sfloat("SpO2 (slow)").value, c.sfloat("pulse rate (slow)").value
    _status(c, flags & 0x04, flags & 0x08, flags & 0x10, meta)
    return _readings(c, device_id, spo2, pr, DeviceTime(None, ""), meta, received, CONTINUOUS)


def _status(c: Cursor, has_status, has_device_status, has_pai, meta: dict) -> None:
    if has_status:
        s = c.u16("measurement status")
        meta["measurement_status"] = s
        meta["measurement_status_flags"] = bits(s & 0xFFE0, MEASUREMENT_STATUS)
    if has_device_status:
        d = c.u24("device and sensor status")
        meta["device_status"] = d
        meta["device_status_flags"] = bits(d, DEVICE_STATUS)
    if has_pai:
        meta["pulse_amplitude_index_pct"] = c.sfloat("pulse amplitude index").value


def _readings(c, device_id, spo2, pr, t, meta, received, characteristic) -> list[Reading]:
    bad = sorted(NOT_PATIENT & set(meta.get("measurement_status_flags", ())))
    out = []
    for code, number, unit in ((SPO2, spo2, "%"), (PULSE, pr, "/min")):
        value, reason = number.value, number.reason
        if bad and value is not None:
            meta = {**meta, "value_as_measured": value}
            value, reason = None, "oximeter reported " + ", ".join(bad).replace("_", " ")
        out.append(Reading(device_id=device_id, code=code, value=value, unit=unit, transport="ble",
                           device_time=t.when, raw=c.data.hex(), no_value_reason=reason, meta=dict(meta),
                           source_key=source_key(characteristic, code, t, received, c.data)))
    return out
