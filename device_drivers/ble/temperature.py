"""Temperature Measurement (0x2A1C, indicated) and Intermediate Temperature (0x2A1E, notified).

Layout (HTS 1.0): flags | temperature FLOAT | [Date Time] | [temperature type uint8].
Flags: bit0 unit (0 Celsius, 1 Fahrenheit), bit1 time stamp, bit2 temperature type.
Some cheap thermometers send a 2-byte SFLOAT instead of the FLOAT (a Yuwell YHW-6 driver falls
back to it, docs/devices.md, characteristic layouts): a value exactly 2 bytes shorter than the flags require is read as
SFLOAT and marked `meta["sfloat_fallback"]`.
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from edge.core.reading import Reading

from .errors import TemperatureFrameError
from .fields import Cursor, DeviceTime, source_key

TEMPERATURE_MEASUREMENT = "2a1c"
INTERMEDIATE_TEMPERATURE = "2a1e"
BODY_TEMPERATURE = "8310-5"
SITES = {1: "armpit", 2: "body", 3: "ear", 4: "finger", 5: "gastrointestinal_tract", 6: "mouth",
         7: "rectum", 8: "toe", 9: "tympanum"}


def parse(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc, received: datetime | None = None,
          characteristic: str = TEMPERATURE_MEASUREMENT) -> list[Reading]:
    c = Cursor(data, TemperatureFrameError, "Temperature Measurement")
    flags = c.u8("flags")
    expected = 1 + 4 + (7 if flags & 0x02 else 0) + (1 if flags & 0x04 else 0)
    fallback = len(c.data) == expected - 2
    number = c.sfloat("temperature") if fallback else c.float32("temperature")
    t = c.date_time("time stamp", tz) if flags & 0x02 else DeviceTime(None, "")
    meta: dict = {"characteristic": characteristic, "flags": flags}
    if flags & 0x04:
        site = c.u8("temperature type")
        meta["site"] = SITES.get(site, f"reserved:{site}")
    if fallback:
        meta["sfloat_fallback"] = True
    if t.text:
        meta["device_time_as_sent"] = t.text
    if characteristic == INTERMEDIATE_TEMPERATURE:
        meta["intermediate"] = True
    return [Reading(device_id=device_id, code=BODY_TEMPERATURE, value=number.value,
                    unit="[degF]" if flags & 0x01 else "Cel", transport="ble", device_time=t.when,
                    raw=c.data.hex(), no_value_reason=number.reason, meta=meta,
                    source_key=source_key(characteristic, BODY_TEMPERATURE, t, received, c.data))]


def parse_intermediate(data: bytes, device_id: str, *, tz: tzinfo = timezone.utc,
                       received: datetime | None = None) -> list[Reading]:
    return parse(data, device_id, tz=tz, received=received, characteristic=INTERMEDIATE_TEMPERATURE)
