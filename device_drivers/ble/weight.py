"""Weight Measurement (0x2A9D, indicated).

Layout (WSS 1.0): flags | weight uint16 | [Date Time] | [user id uint8] | [BMI uint16, height uint16].
Flags: bit0 units (0 SI: weight x0.005 kg, height x0.001 m; 1 imperial: weight x0.01 lb,
height x0.1 in), bit1 time stamp, bit2 user id, bit3 BMI and height (both, together); bits 4-7
are reserved for future use and ignored. Weight 0xFFFF means "measurement unsuccessful".
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from edge.core.reading import Reading

from .errors import WeightFrameError
from .fields import Cursor, DeviceTime, source_key

WEIGHT_MEASUREMENT = "2a9d"
WEIGHT, HEIGHT, BMI = "29463-7", "8302-2", "39156-5"
UNSUCCESSFUL = 0xFFFF


def parse(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
          received: datetime | None = None) -> list[Reading]:
    c = Cursor(data, WeightFrameError, "Weight Measurement")
    flags = c.u8("flags")
    imperial = bool(flags & 0x01)
    raw_weight = c.u16("weight")
    t = c.date_time("time stamp", tz) if flags & 0x02 else DeviceTime(None, "")
    meta: dict = {"characteristic": WEIGHT_MEASUREMENT, "flags": flags}
    user = c.u8("user id") if flags & 0x04 else None
    if user is not None:
        meta["user_id"] = None if user == 0xFF else user
    if t.text:
        meta["device_time_as_sent"] = t.text
    extra = f"user={user}"

    def reading(code, value, unit, reason=None):
        return Reading(device_id=device_id, code=code, value=value, unit=unit, transport="ble",
                       device_time=t.when, raw=c.data.hex(), no_value_reason=reason, meta=dict(meta),
                       source_key=source_key(WEIGHT_MEASUREMENT, code, t, received, c.data, extra))

    if raw_weight == UNSUCCESSFUL:
        out = [reading(WEIGHT, None, "[lb_av]" if imperial else "kg", "the scale reports the measurement "
                       "was unsuccessful")]
    elif imperial:
        out = [reading(WEIGHT, round(raw_weight / 100, 2), "[lb_av]")]
    else:
        out = [reading(WEIGHT, round(raw_weight * 5 / 1000, 3), "kg")]
    if flags & 0x08:
        bmi, height = c.u16("BMI"), c.u16("height")
        out.append(reading(BMI, round(bmi / 10, 1), "kg/m2"))
        out.append(reading(HEIGHT, round(height / 10, 1), "[in_i]") if imperial
                   else reading(HEIGHT, round(height / 1000, 3), "m"))
    return out
