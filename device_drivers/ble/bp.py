"""Blood Pressure Measurement (0x2A35, indicated) and Intermediate Cuff Pressure (0x2A36, notified).

Layout (BLS 1.0): flags | systolic SFLOAT | diastolic SFLOAT | MAP SFLOAT | [Date Time] |
[pulse rate SFLOAT] | [user id uint8, 0xFF unknown] | [measurement status uint16].
Flags: bit0 unit (0 mmHg, 1 kPa), bit1 time stamp, bit2 pulse rate, bit3 user id, bit4 status.
Intermediate Cuff Pressure has the same layout; only the first field (current cuff pressure)
means anything. Its readings are marked `meta["intermediate"]`: a live value shown while the
cuff inflates, never stored as a clinical reading.
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from edge.core.reading import Reading

from .errors import BloodPressureFrameError
from .fields import Cursor, DeviceTime, bits, source_key

BP_MEASUREMENT = "2a35"
INTERMEDIATE_CUFF_PRESSURE = "2a36"
SYSTOLIC, DIASTOLIC, PULSE = "8480-6", "8462-4", "8867-4"
CUFF_PRESSURE = "cuff-pressure"       # live value only; never ingested
STATUS_BITS = {0: "body_movement", 1: "cuff_too_loose", 2: "irregular_pulse", 5: "improper_position"}
PULSE_RANGE = {0: "within_range", 1: "above_upper_limit", 2: "below_lower_limit", 3: "reserved"}


def parse(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
          received: datetime | None = None) -> list[Reading]:
    """Blood Pressure Measurement -> systolic, diastolic and (if sent) pulse readings."""
    return _parse(data, device_id, tz, received, BP_MEASUREMENT)


def parse_intermediate(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
                       received: datetime | None = None) -> list[Reading]:
    """Intermediate Cuff Pressure -> one live cuff-pressure reading (meta intermediate=True)."""
    return _parse(data, device_id, tz, received, INTERMEDIATE_CUFF_PRESSURE)


def status_meta(status: int) -> dict:
    return {"status": status, "status_flags": bits(status & ~0x18, STATUS_BITS),
            "pulse_rate_range": PULSE_RANGE[status >> 3 & 3]}


def _parse(data, device_id, tz, received, characteristic) -> list[Reading]:
    what = "Blood Pressure Measurement" if characteristic == BP_MEASUREMENT else "Intermediate Cuff Pressure"
    c = Cursor(data, BloodPressureFrameError, what)
    flags = c.u8("flags")
    unit = "kPa" if flags & 0x01 else "mm[Hg]"
    first, second, mean = c.sfloat("systolic"), c.sfloat("diastolic"), c.sfloat("mean arterial pressure")
    t = c.date_time("time stamp", tz) if flags & 0x02 else None
    pulse = c.sfloat("pulse rate") if flags & 0x04 else None
    user = c.u8("user id") if flags & 0x08 else None
    meta: dict = {"characteristic": characteristic, "flags": flags}
    if flags & 0x10:
        meta.update(status_meta(c.u16("measurement status")))
    if t is not None:
        meta["device_time_as_sent"] = t.text
    if user is not None:
        meta["user_id"] = None if user == 0xFF else user
    raw = c.data
    common = dict(device_id=device_id, transport="ble", device_time=t.when if t else None, raw=raw.hex())
    extra = f"user={user}"
    stamp = t or DeviceTime(None, "")

    def reading(code, number, unit_, **more):
        return Reading(code=code, value=number.value, unit=unit_, no_value_reason=number.reason,
                       source_key=source_key(characteristic, code, stamp, received, raw, extra),
                       meta={**meta, **more}, **common)

    if characteristic == INTERMEDIATE_CUFF_PRESSURE:
        return [reading(CUFF_PRESSURE, first, unit, intermediate=True)]
    out = [reading(SYSTOLIC, first, unit, mean_arterial_pressure=mean.value),
           reading(DIASTOLIC, second, unit, mean_arterial_pressure=mean.value)]
    if pulse is not None:
        out.append(reading(PULSE, pulse, "/min"))
    return out
