"""Heart Rate Measurement (0x2A37, notified about once a second).

Layout (HRS 1.0): flags | HR uint8 or uint16 | [energy expended uint16 kJ] | [RR interval uint16,
1/1024 s, repeated to the end]. Flags: bit0 HR is uint16, bit1 contact detected, bit2 contact
detection supported, bit3 energy expended present, bit4 RR intervals present.
A heart rate of 0 is what some straps send without skin contact: kept as "no value".
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from edge.core.reading import Reading

from .errors import HeartRateFrameError
from .fields import Cursor, DeviceTime, source_key

HEART_RATE_MEASUREMENT = "2a37"
HEART_RATE = "8867-4"


def parse(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
          received: datetime | None = None) -> list[Reading]:
    c = Cursor(data, HeartRateFrameError, "Heart Rate Measurement")
    flags = c.u8("flags")
    rate = c.u16("heart rate (uint16)") if flags & 0x01 else c.u8("heart rate (uint8)")
    meta: dict = {"characteristic": HEART_RATE_MEASUREMENT, "flags": flags}
    if flags & 0x04:
        meta["contact"] = bool(flags & 0x02)
    if flags & 0x08:
        meta["energy_expended_kj"] = c.u16("energy expended")
    if flags & 0x10:
        if c.remaining == 0 or c.remaining % 2:
            raise HeartRateFrameError(f"Heart Rate Measurement: RR intervals flagged but {c.remaining} "
                                      "bytes follow (needs a non-zero even number)")
        meta["rr_intervals_1024"] = [c.u16("RR interval") for _ in range(c.remaining // 2)]
        meta["rr_intervals_s"] = [round(v / 1024, 4) for v in meta["rr_intervals_1024"]]
    value, reason = (float(rate), None) if rate else (None, "the strap sent heart rate 0 (no contact)")
    return [Reading(device_id=device_id, code=HEART_RATE, value=value, unit="/min", transport="ble",
                    raw=c.data.hex(), no_value_reason=reason, meta=meta,
                    source_key=source_key(HEART_RATE_MEASUREMENT, HEART_RATE, DeviceTime(None, ""),
                                          received, c.data))]
