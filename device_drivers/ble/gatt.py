"""The GATT health services and characteristics this driver speaks, and their parsers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import bp, glucose, heart_rate, plx, temperature, weight

BASE = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: str) -> str:
    """'2a35' -> the full 128-bit UUID string bleak reports."""
    return f"0000{short.lower()}{BASE}"


def short(uuid: str) -> str:
    """The 16-bit form of a SIG UUID ('00002a35-0000-...' -> '2a35'); other UUIDs unchanged."""
    u = uuid.lower()
    return u[4:8] if u.endswith(BASE) and u.startswith("0000") else u


SERVICES = {"1810": "blood pressure", "1809": "health thermometer", "180d": "heart rate",
            "1808": "glucose", "181d": "weight scale", "1822": "pulse oximeter"}
SERVICE_KIND = {"1810": "bp", "1809": "thermometer", "180d": "wearable", "1808": "glucose",
                "181d": "scale", "1822": "spo2"}
CURRENT_TIME_SERVICE, CURRENT_TIME, DATE_TIME = "1805", "2a2b", "2a08"
RACP = "2a52"


@dataclass(frozen=True)
class Characteristic:
    uuid: str                   # 16-bit form
    name: str
    parse: Callable             # (bytes, device_id, *, tz, received) -> list[Reading]
    indicate: bool              # indicated (acknowledged) rather than notified
    continuous: bool = False    # a stream (about 1/s): stored at most once per `continuous_every`


MEASUREMENTS = {c.uuid: c for c in (
    Characteristic(bp.BP_MEASUREMENT, "Blood Pressure Measurement", bp.parse, True),
    Characteristic(bp.INTERMEDIATE_CUFF_PRESSURE, "Intermediate Cuff Pressure", bp.parse_intermediate, False),
    Characteristic(temperature.TEMPERATURE_MEASUREMENT, "Temperature Measurement", temperature.parse, True),
    Characteristic(temperature.INTERMEDIATE_TEMPERATURE, "Intermediate Temperature",
                   temperature.parse_intermediate, False),
    Characteristic(heart_rate.HEART_RATE_MEASUREMENT, "Heart Rate Measurement", heart_rate.parse, False, True),
    Characteristic(glucose.GLUCOSE_MEASUREMENT, "Glucose Measurement", glucose.parse, False),
    Characteristic(glucose.GLUCOSE_CONTEXT, "Glucose Measurement Context", glucose.parse_context, False),
    Characteristic(weight.WEIGHT_MEASUREMENT, "Weight Measurement", weight.parse, True),
    Characteristic(plx.SPOT_CHECK, "PLX Spot-check Measurement", plx.parse_spot_check, True),
    Characteristic(plx.CONTINUOUS, "PLX Continuous Measurement", plx.parse_continuous, False, True),
)}
