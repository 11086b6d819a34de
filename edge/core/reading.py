"""The one model every driver produces: a Reading.

Drivers fill in what the device said (code, value, unit as sent, device time, raw bytes);
`ingest()` adds receive time and the (boot id, monotonic) anchor, normalises the unit and
judges plausibility. The id is derived from what the device sent, so a redelivered reading
gets the same id and is stored once.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

TRANSPORTS = ("mqtt", "ble", "astm", "hl7", "lines", "manual", "demo")

STATUS_VALID = "valid"          # plausible value in its canonical unit
STATUS_REJECTED = "rejected"    # kept with the reason; never shown as a valid value
STATUS_UNMAPPED = "unmapped"    # a code we do not know, kept raw (e.g. vendor MDC codes)
STATUS_VOIDED = "voided"        # withdrawn by a person, with a reason
STATUSES = (STATUS_VALID, STATUS_REJECTED, STATUS_UNMAPPED, STATUS_VOIDED)


def utc_iso(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, the one time format the store uses."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        raise ValueError("naive datetime: every time in the store carries a zone")
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite real number, else None.

    What a device sends can be NaN, an infinity, a bool, or an integer too large for a float
    (a SenML `1` followed by 400 zeros): none of these can be stored as a value or printed as
    JSON, so none of them is a value (docs/devices.md, "Numbers and times").
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def storable_time(dt: datetime | None) -> bool:
    """True when `dt` can be kept: it carries a zone and is a time in years 1-9999 in UTC too
    (9999-12-31 23:00 at UTC-5 is in year 10000 in UTC and cannot be)."""
    if dt is None:
        return True
    try:
        utc_iso(dt)
    except (OverflowError, ValueError):
        return False
    return True


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None, so json.dumps(allow_nan=False) works."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Reading:
    device_id: str
    code: str                           # LOINC (or the raw code when unmapped)
    value: float | None                 # as sent; None = the device said "no value"
    unit: str                           # UCUM/SenML unit as sent
    transport: str
    device_time: datetime | None = None
    raw: str = ""                       # the payload as received (text, or hex for binary)
    source_key: str | None = None       # what makes this reading unique at its device
    no_value_reason: str | None = None  # e.g. "SFLOAT NaN" when value is None
    meta: dict[str, Any] = field(default_factory=dict)  # status bits, flags, patient hints...
    # filled by ingest():
    receive_time: datetime | None = None
    boot_id: str | None = None
    monotonic: float | None = None

    @property
    def id(self) -> str:
        return reading_id(self.device_id, self.source_key or self.default_source_key(), self.device_time)

    def default_source_key(self) -> str:
        return json.dumps([self.code, utc_iso(self.device_time), self.value, self.unit],
                          separators=(",", ":"))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.id
        return d


def reading_id(device_id: str, source_key: str, device_time: datetime | None = None) -> str:
    """A stable id: the same device saying the same thing twice gives the same id.

    When the device gave a time, the id starts with it (hex milliseconds), so new readings land
    at the end of the primary-key index instead of on a random page: fewer pages rewritten per
    commit, less SD-card wear. The digest (96 bits) keeps ids of one instant apart.
    """
    digest = hashlib.sha256(f"{device_id}\x1f{source_key}".encode()).hexdigest()
    if device_time is None:
        return "r-" + digest[:32]
    ms = max(0, int(device_time.timestamp() * 1000))
    return f"r-{ms:012x}{digest[:20]}"
