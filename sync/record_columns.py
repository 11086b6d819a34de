"""One column of a batch's records (sync.record_codec): how the values of one payload key, over
the records of one kind, are written, and read back exactly.

Column types (docs/hub.md, "Limits on what a node sends"):

* "id": same as the record id; "raw": the values as they are; "dict": a dictionary and indexes;
* "ts": times (ISO 8601 UTC with milliseconds) as milliseconds, each the difference from the one before;
* "=" (issue 17.4): the same values as an earlier column "k" but for the exceptions "e" ([row, value]):
  a reading's effective_time is its device_time unless that was wrong;
* "tr": times as milliseconds from an earlier time column "r" on the same record (a reading's
  receive_time a few seconds after its device_time);
* "by": a function of an earlier column "k", as its pairs "s" ([that column's value, this one's]):
  a reading's unit follows from its code;
* "f": floats written shortest, whole ones as integers (118.0 as 118, 5.3 as 5.3);
* "fx": decimals of at most "p" places as integers ("value" 118.0 is 118 at p 0, mmol/L 5.3 is
  53 at p 1), each the difference from the one before when "z" says so, and counted from the
  milliseconds of an earlier time column "r" when it names one (a reading's `monotonic` seconds
  move with its receive_time).

An encoder offers every form that fits and keeps the smallest after zlib; sync.record_codec
checks the whole kind round-trips before it sends it. A hub before issue 17.4 does not know the
newer types and refuses such a batch with the reason instead of storing it wrong.
"""
from __future__ import annotations

import bz2
import json
import math
import re
import zlib
from datetime import datetime, timezone
from typing import Any

from .errors import ProtocolError
from .record_packing import decode_grouped, grouped_forms, packed_forms, unpacked

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
NEWER = ("=", "tr", "fx", "by", "f", "pk", "pg")     # the types of issue 17.4 ("pk", "pg": sync.record_packing)
MAX_PLACES = 3
MAX_EXACT = 2 ** 53


class _Missing:
    pass


_MISSING = _Missing()


def _to_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(round(dt.timestamp() * 1000))


def _from_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _delta_ms(values: list[str | None]) -> list[int | None]:
    out, prev = [], 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        ms = _to_ms(v)
        out.append(ms - prev)
        prev = ms
    return out


def _is_time(v: Any) -> bool:
    return isinstance(v, str) and ISO_MS.fullmatch(v) is not None


def _dictionary_worth_it(values: list[Any]) -> bool:
    if not values or not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
        return False
    return len({json.dumps(v) for v in values}) <= max(1, len(values) // 3)


def _encode_column(values: list[Any], ids: list[str]) -> dict[str, Any]:
    """The forms of nodes before issue 17.4 (what every hub reads)."""
    col: dict[str, Any] = {}
    missing = [i for i, v in enumerate(values) if v is _MISSING]
    if missing:
        col["m"] = missing
    present = [v for v in values if v is not _MISSING]
    present_ids = [ids[i] for i, v in enumerate(values) if v is not _MISSING]
    if present == present_ids:
        col["t"] = "id"
    elif present and all(v is None or _is_time(v) for v in present) and any(v is not None for v in present):
        col["t"], col["d"] = "ts", _delta_ms(present)
    elif _dictionary_worth_it(present):
        distinct: list[Any] = []
        index: dict[str, int] = {}
        idx = []
        for v in present:
            key = json.dumps(v)
            if key not in index:
                index[key] = len(distinct)
                distinct.append(v)
            idx.append(index[key])
        col["t"], col["s"] = "dict", distinct
        col["x"] = idx[0] if len(distinct) == 1 else idx
    else:
        col["t"], col["x"] = "raw", present
    return col


def value_key(v: Any) -> Any:
    """A value's identity for comparing columns: its type and value (a JSON text for lists and objects)."""
    if v is None or v is _MISSING or isinstance(v, (str, int, float)):
        return (type(v), v)
    return (type(v), json.dumps(v, sort_keys=True))


def best_column(values: list[Any], ids: list[str], earlier: list[list[Any]], times: list[int],
                keys: list[list[Any]], few: list[int]) -> dict[str, Any]:
    """The smallest form of a column (after zlib), given the columns before it (`earlier`, one
    value per record, _MISSING where a record lacks the key; `keys`, their value_key), which of
    them are time columns and which have few distinct values (`few`, dictionaries)."""
    legacy = _encode_column(values, ids)
    if legacy["t"] == "id":
        return legacy
    mine = [value_key(v) for v in values]
    candidates = [legacy, *_same_as(values, mine, keys), *_relative_times(values, earlier, times),
                  *_fixed_point(values, earlier, times), *_function_of(values, mine, earlier, keys, few)]
    best = min(candidates, key=_size)
    # packed bits against JSON digits: as bzip2 (what a large batch goes as) writes them,
    # only when clearly smaller alone: beside the other columns (and under zlib, for a batch that
    # goes as zlib) the digits may still go smaller (a follow-up's saved_at, 0.94 of the digits
    # alone, cost 0.3% more in the whole batch)
    packed = min([*packed_forms(best), *grouped_forms(values, earlier, few, _places, value_key)],
                 key=_bz2_size, default=None)
    return packed if packed is not None and _bz2_size(packed) < PACKED_GAIN * _bz2_size(best) else best


PACKED_GAIN = 0.9


def _bz2_size(col: dict[str, Any]) -> int:
    return len(bz2.compress(json.dumps(col, separators=(",", ":")).encode(), 9))


def _size(col: dict[str, Any]) -> int:
    return len(zlib.compress(json.dumps(col, separators=(",", ":")).encode(), 6))


def _missing(values: list[Any]) -> dict[str, Any]:
    m = [i for i, v in enumerate(values) if v is _MISSING]
    return {"m": m} if m else {}


def _same_as(values: list[Any], mine: list[Any], keys: list[list[Any]]) -> list[dict[str, Any]]:
    out, most = [], len(values) // 4
    for k, other in enumerate(keys):
        exceptions = []
        for i, (a, b) in enumerate(zip(mine, other)):
            if a != b:
                if a[0] is _Missing or b[0] is _Missing or len(exceptions) >= most:
                    break
                exceptions.append([i, values[i]])
        else:
            out.append({"t": "=", "k": k, **({"e": exceptions} if exceptions else {})})
    return out


def _function_of(values: list[Any], mine: list[Any], earlier: list[list[Any]], keys: list[list[Any]],
                 few: list[int]) -> list[dict[str, Any]]:
    out = []
    for k in few:
        pairs: dict[Any, tuple[Any, Any]] = {}
        for i, (a, b) in enumerate(zip(mine, keys[k])):
            if (a[0] is _Missing) != (b[0] is _Missing):
                break
            if a[0] is _Missing:
                continue
            was = pairs.get(b)
            if was is None:
                pairs[b] = (a, i)
            elif was[0] != a:
                break
        else:
            if pairs and len(pairs) <= max(1, len(values) // 3):
                out.append({"t": "by", "k": k, "s": [[earlier[k][i], values[i]] for _a, i in pairs.values()]})
    return out


def _relative_times(values: list[Any], earlier: list[list[Any]], times: list[int]) -> list[dict[str, Any]]:
    present = [i for i, v in enumerate(values) if v is not _MISSING]
    if not present or not all(values[i] is None or _is_time(values[i]) for i in present):
        return []
    out = []
    for k in times:
        ref = earlier[k]
        if all(values[i] is None or _is_time(ref[i]) for i in present):
            out.append({"t": "tr", "r": k, **_missing(values),
                        "d": [None if values[i] is None else _to_ms(values[i]) - _to_ms(ref[i]) for i in present]})
    return out


def _places(values: list[Any]) -> int | None:
    """The fewest decimal places (at most MAX_PLACES) that write every value exactly, or None when
    a value is not a finite float (ints, bools and texts stay as they are)."""
    floats = [v for v in values if v is not None]
    if not floats or not all(type(v) is float and math.isfinite(v) and abs(v) < 1e12 for v in floats):
        return None
    for p in range(MAX_PLACES + 1):
        if all(repr(round(v * 10 ** p) / 10 ** p) == repr(v) for v in floats):
            return p
    return None


def _fixed_point(values: list[Any], earlier: list[list[Any]], times: list[int]) -> list[dict[str, Any]]:
    present = [i for i, v in enumerate(values) if v is not _MISSING]
    p = _places([values[i] for i in present])
    if p is None:
        return []
    ints = [None if values[i] is None else round(values[i] * 10 ** p) for i in present]
    shortest = [None if values[i] is None else (int(values[i]) if values[i].is_integer() else values[i])
                for i in present]
    out = [{"t": "f", **_missing(values), "x": shortest},
           {"t": "fx", "p": p, **_missing(values), "x": ints},
           {"t": "fx", "p": p, "z": 1, **_missing(values), "x": _deltas(ints)}]
    if p == MAX_PLACES:       # seconds to the millisecond: counted from a time column's milliseconds
        for k in times:
            ref = earlier[k]
            if all(values[i] is None or _is_time(ref[i]) for i in present):
                rel = [None if n is None else n - _to_ms(ref[i]) for i, n in zip(present, ints)]
                out.append({"t": "fx", "p": p, "z": 1, "r": k, **_missing(values), "x": _deltas(rel)})
    return out


def _deltas(ints: list[int | None]) -> list[int | None]:
    out, prev = [], 0
    for n in ints:
        if n is None:
            out.append(None)
            continue
        out.append(n - prev)
        prev = n
    return out


def decode_column(col: dict[str, Any], ids: list[str], earlier: list[list[Any]] | None = None) -> list[Any]:
    """The values of one column, one per record of the kind, _MISSING where a record lacks the key
    (`ids` has one id per record; `earlier` holds the columns decoded before it)."""
    n, earlier = len(ids), earlier or []
    t = col["t"]
    if t == "pg":
        return decode_grouped(col, _earlier(col, "k", earlier), value_key, MAX_PLACES)
    if t == "pk":
        inner = col.get("c")
        missing = inner.get("m", []) if isinstance(inner, dict) else []
        return decode_column(unpacked(col, n - len(missing) if isinstance(missing, list) else 0), ids, earlier)
    if t == "by":
        table = {json.dumps(k, sort_keys=True): v for k, v in col["s"]}
        return [v if v is _MISSING else table[json.dumps(v, sort_keys=True)] for v in _earlier(col, "k", earlier)]
    if t == "=":
        out = list(_earlier(col, "k", earlier))
        for i, v in col.get("e", []):
            if out[i] is _MISSING:
                raise ProtocolError("an exception of a copied column falls on a missing value")
            out[i] = v
        return out
    missing = set(col.get("m", []))
    rows = [i for i in range(n) if i not in missing]
    if len(missing) != n - len(rows):
        raise ProtocolError("a column's missing rows are outside its kind")
    out: list[Any] = [_MISSING] * n
    for i, v in zip(rows, _present(col, [ids[i] for i in rows], rows, earlier), strict=True):
        out[i] = v
    return out


def _earlier(col: dict[str, Any], key: str, earlier: list[list[Any]]) -> list[Any]:
    k = col.get(key)
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(earlier):
        raise ProtocolError(f"a column refers to column {k!r}, which is not before it")
    return earlier[k]


def _present(col: dict[str, Any], ids: list[str], rows: list[int], earlier: list[list[Any]]) -> list[Any]:
    t = col["t"]
    if t == "id":
        return list(ids)
    if t == "ts":
        out, prev = [], 0
        for d in col["d"]:
            if d is None:
                out.append(None)
                continue
            prev += int(d)
            out.append(_from_ms(prev))
        return out
    if t == "tr":
        ref = _earlier(col, "r", earlier)
        return [None if d is None else _from_ms(_to_ms(ref[i]) + int(d)) for i, d in zip(rows, col["d"], strict=True)]
    if t == "fx":
        p = col["p"]
        if not isinstance(p, int) or not 0 <= p <= MAX_PLACES:
            raise ProtocolError(f"a fixed-point column has {p!r} places (0-{MAX_PLACES})")
        ints, prev = [], 0
        for d in col["x"]:
            if d is None:
                ints.append(None)
                continue
            prev = prev + int(d) if col.get("z") else int(d)
            ints.append(prev)
        if "r" in col:
            ref = _earlier(col, "r", earlier)
            ints = [None if n is None else n + _to_ms(ref[i]) for i, n in zip(rows, ints, strict=True)]
        if any(n is not None and abs(n) >= MAX_EXACT for n in ints):
            raise ProtocolError("a fixed-point value is out of range")
        return [None if n is None else n / 10 ** p for n in ints]
    if t == "f":
        if not all(d is None or (type(d) in (int, float) and abs(d) < MAX_EXACT) for d in col["x"]):
            raise ProtocolError("a float column holds something else than numbers")
        return [None if d is None else float(d) for d in col["x"]]
    if t == "dict":
        x = col["x"]
        idx = [x] * len(ids) if isinstance(x, int) else x
        return [col["s"][i] for i in idx]
    if t == "raw":
        return list(col["x"])
    raise ProtocolError(f"unknown column type {t!r}")
