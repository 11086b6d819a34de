"""SenML JSON (RFC 8428) -> Readings. Pure: bytes in, readings out, or SenMLError.

PINNED (README, "Devices over MQTT"): a record's `n` is a LOINC code or a documented short name
(edge.core.codes), `u` a UCUM or SenML unit. Base fields bn/bt/bu/bv are resolved per
RFC 8428 §4.6; a time below 2**28 is relative to now (§4.5.3). A message is accepted whole
or rejected whole with one reason; implausible values are not rejected here: ingest stores
them as rejected readings so they are never lost.
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta, timezone

from edge.core import codes
from edge.core.reading import Reading, finite_number, storable_time

from ..errors import FrameError

RELATIVE_TIME_LIMIT = 2 ** 28
MAX_RECORDS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class SenMLError(FrameError):
    """A SenML payload that cannot be accepted; the message is sent back to the device."""


def parse(device_id: str, payload: bytes, *, now: datetime, max_bytes: int = 4096,
          transport: str = "mqtt") -> list[Reading]:
    if len(payload) > max_bytes:
        raise SenMLError(f"payload of {len(payload)} bytes is over the limit of {max_bytes} bytes")
    try:
        text = payload.decode("utf-8")
        doc = json.loads(text, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:   # JSONDecodeError; an integer of over 4300 digits
        raise SenMLError(f"payload is not valid UTF-8 JSON: {str(e)[:200]}") from None
    except RecursionError:
        raise SenMLError("payload is not valid SenML: JSON nested too deeply") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        raise SenMLError("payload must be a non-empty JSON array of SenML records")
    if len(doc) > MAX_RECORDS:
        raise SenMLError(f"{len(doc)} records in one message; at most {MAX_RECORDS}")

    base = {"bn": "", "bt": 0.0, "bu": None, "bv": 0.0}
    digest = hashlib.sha256(payload).hexdigest()[:16]
    readings = []
    for i, rec in enumerate(doc):
        if not isinstance(rec, dict):
            raise SenMLError(f"record {i} is {type(rec).__name__}, not an object")
        for key, kind in (("bn", str), ("bu", str), ("bt", float), ("bv", float)):
            if key in rec:
                base[key] = _typed(rec, key, kind, i)
        readings.append(_record(device_id, rec, i, base, now, text, digest, transport))
    return readings


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (RFC 8259 §6)")


def _typed(rec: dict, key: str, kind, i: int):
    """rec[key] when it is of `kind`; a number comes back as a finite float, or SenMLError."""
    v = rec[key]
    if kind is str:
        if not isinstance(v, str):
            raise SenMLError(f"record {i}: '{key}' must be a string, got {_shown(v)}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SenMLError(f"record {i}: '{key}' must be a number, got {_shown(v)}")
    number = finite_number(v)
    if number is None:
        raise SenMLError(f"record {i}: '{key}' must be a finite number, got {_shown(v)}")
    return number


def _shown(v) -> str:
    """A short, safe rendering of what was sent (an integer of 400 digits is not repeated whole)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10 ** 30:
        return "an integer too large for a number" if abs(v) > 10 ** 308 else f"{float(v):g}"
    return json.dumps(v)[:60]


def _finite(value: float, what: str, i: int, name: str) -> float:
    if not math.isfinite(value):
        raise SenMLError(f"record {i} ({name}): {what} is out of range")
    return value


def _record(device_id: str, rec: dict, i: int, base: dict, now: datetime, text: str, digest: str,
            transport: str) -> Reading:
    name = _typed(rec, "n", str, i) if "n" in rec else ""
    if not name:
        raise SenMLError(f"record {i}: no 'n' (the measurement code)")
    code = codes.lookup(name)
    if code is None:
        raise SenMLError(f"record {i}: unknown code {name!r}; use a LOINC code such as 8480-6, 8462-4, 8867-4, "
                         f"2708-6, 8310-5, 29463-7, 8302-2, 2339-0 or a documented short name")
    if "v" not in rec:
        other = [k for k in ("vs", "vb", "vd") if k in rec]
        raise SenMLError(f"record {i} ({name}): needs a numeric 'v'" + (f", not {other[0]!r}" if other else ""))
    value = _finite(_typed(rec, "v", float, i) + base["bv"], "'v' + 'bv'", i, name)
    unit = _typed(rec, "u", str, i) if "u" in rec else base["bu"]
    if not unit:
        raise SenMLError(f"record {i} ({name}): no unit ('u' or 'bu'); {code.loinc} takes "
                         f"{', '.join(sorted(code.conversions))}")
    if unit not in code.conversions:
        raise SenMLError(f"record {i} ({name}): unit {unit!r} is not valid for {code.loinc}; use "
                         f"{', '.join(sorted(code.conversions))}")
    t = _finite(base["bt"] + (_typed(rec, "t", float, i) if "t" in rec else 0), "'bt' + 't'", i, name)
    device_time = None
    try:   # beyond year 1..9999: OverflowError from timedelta or from the addition
        if t >= RELATIVE_TIME_LIMIT:
            device_time = _EPOCH + timedelta(seconds=t)
        elif t != 0:
            device_time = now + timedelta(seconds=t)
    except OverflowError:
        raise SenMLError(f"record {i} ({name}): time {t:g} is out of range") from None
    if not storable_time(device_time):
        raise SenMLError(f"record {i} ({name}): time {t:g} is out of range")
    if t >= RELATIVE_TIME_LIMIT:
        key = json.dumps([code.loinc, float(t), float(value), unit])
    else:
        key = json.dumps([code.loinc, "msg", digest, i])
    return Reading(device_id=device_id, code=code.loinc, value=value, unit=unit, transport=transport,
                   device_time=device_time, raw=text, source_key=key,
                   meta={"senml_name": base["bn"] + name} if base["bn"] else {})
