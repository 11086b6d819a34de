"""SenML JSON (RFC 8428) -> Readings. Pure: bytes in, readings out, or SenMLError.

PINNED (ARCHITECTURE.md): a record's `n` is a LOINC code or a documented short name
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
from edge.core.reading import Reading

from ..errors import FrameError

RELATIVE_TIME_LIMIT = 2 ** 28
MAX_RECORDS = 64
GLUCOSE = "2339-0"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class SenMLError(FrameError):
    """A SenML payload that cannot be accepted; the message is sent back to the device."""


def parse(device_id: str, payload: bytes, *, now: datetime, max_bytes: int = 4096,
          transport: str = "mqtt") -> list[Reading]:
    if len(payload) > max_bytes:
        raise SenMLError(f"payload of {len(payload)} bytes is over the limit of {max_bytes} bytes")
    try:
        text = payload.decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SenMLError(f"payload is not valid UTF-8 JSON: {e}") from None
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
        for key, kind in (("bn", str), ("bu", str), ("bt", (int, float)), ("bv", (int, float))):
            if key in rec:
                base[key] = _typed(rec, key, kind, i)
        readings.append(_record(device_id, rec, i, base, now, text, digest, transport))
    return readings


def _typed(rec: dict, key: str, kind, i: int):
    v = rec[key]
    if isinstance(v, bool) or not isinstance(v, kind) or (isinstance(v, float) and not math.isfinite(v)):
        want = "a string" if kind is str else "a number"
        raise SenMLError(f"record {i}: '{key}' must be {want}, got {json.dumps(v)}")
    return v


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
    value = _typed(rec, "v", (int, float), i) + base["bv"]
    unit = _typed(rec, "u", str, i) if "u" in rec else base["bu"]
    if not unit:
        raise SenMLError(f"record {i} ({name}): no unit ('u' or 'bu'); {code.loinc} takes "
                         f"{', '.join(sorted(code.conversions))}")
    if unit not in code.conversions:
        raise SenMLError(f"record {i} ({name}): unit {unit!r} is not valid for {code.loinc}; use "
                         f"{', '.join(sorted(code.conversions))}")
    t = base["bt"] + (_typed(rec, "t", (int, float), i) if "t" in rec else 0)
    device_time = None
    if t >= RELATIVE_TIME_LIMIT:
        try:
            device_time = _EPOCH + timedelta(seconds=t)
        except OverflowError:
            raise SenMLError(f"record {i} ({name}): time {t} is out of range") from None
        key = json.dumps([code.loinc, float(t), float(value), unit])
    elif t != 0:
        device_time = now + timedelta(seconds=t)
        key = json.dumps([code.loinc, "msg", digest, i])
    else:
        key = json.dumps([code.loinc, "msg", digest, i])
    meta = {"senml_name": base["bn"] + name} if base["bn"] else {}
    if "meal" in rec:               # extension field (not must-understand): when a glucose was taken
        meal = codes.meal_mark(rec["meal"])
        if meal is None or code.loinc != GLUCOSE:
            raise SenMLError(f"record {i} ({name}): 'meal' is for glucose (2339-0) and one of "
                             f"{', '.join(codes.GLUCOSE_MEALS)} or random, got {json.dumps(rec['meal'])}")
        meta["meal"] = meal
    return Reading(device_id=device_id, code=code.loinc, value=value, unit=unit, transport=transport,
                   device_time=device_time, raw=text, source_key=key, meta=meta)
