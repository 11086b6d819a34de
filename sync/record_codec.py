"""The columnar record codec: the compressed records of a batch envelope (sync.protocol).

Records of one kind share keys, and most values repeat (device, code, unit, boot id) or grow
slowly (times). Per kind: ids, versions, one column per payload key, each column stored as
"same as the record id", delta-coded milliseconds, a dictionary, or raw values; then zlib with
a preset dictionary (RECORDS_DICT).
"""
from __future__ import annotations

import json
import re
import struct
import zlib
from datetime import datetime, timezone
from typing import Any

from .errors import ProtocolError, TooBig

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def encode_records(records: list[dict[str, Any]]) -> bytes:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["kind"], []).append(r)
    doc = [_encode_group(kind, rows) for kind, rows in groups.items()]
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, RECORDS_DICT)
    return z.compress(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()) + z.flush()


# A preset zlib dictionary (RFC 1950 section 2.2, FDICT): the column markers, reading field names,
# codes, units and words every batch repeats, so a batch of one reading is about half as large
# (a sync cycle that sends one reading, issue 17.4). The zlib stream names its dictionary by
# Adler-32, so a batch says itself which one it needs; batches without one (nodes before this
# change) decode as before. Never edit these bytes: a new dictionary gets a new name in DICTIONARIES.
RECORDS_DICT = b"".join(json.dumps(w, separators=(",", ":")).encode() for w in (
    "follow_up", "resident", "referral", "report", "rejected", "voided", "serial", "ble", "senml", "astm",
    "no_value_reason", "meta", "source_key", "%", "kg", "mmol/L", "/min", "2708-6", "29463-7", "2339-0",
    "8867-4", "8462-4", "8480-6", "mm[Hg]", "valid", "mqtt", "ok", "clock_status", "transport", "status",
    "reason", "resident_id")) + (
    b'{"t":"raw","x":[{"t":"ts","d":[{"t":"dict","s":[null],"x":0},{"t":"dict","s":["'
    b'[{"k":"reading","i":["r-01","v":1,"f":["id","device_id","code","value","unit","device_time",'
    b'"receive_time","effective_time","boot_id","monotonic","clock_status","transport","status","reason",'
    b'"resident_id"],"c":[{"t":"id"},{"t":"dict","s":["')
DICTIONARIES = {zlib.adler32(RECORDS_DICT): RECORDS_DICT}


def _records_inflater(payload: bytes):
    """A decompressor for a batch's records, with the preset dictionary its zlib header names."""
    if len(payload) >= 6 and payload[1] & 0x20:
        zdict = DICTIONARIES.get(struct.unpack(">I", payload[2:6])[0])
        if zdict is None:
            raise ProtocolError("batch records need a zlib dictionary this hub does not know (a newer node?)")
        return zlib.decompressobj(zdict=zdict)
    return zlib.decompressobj()


def _encode_group(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [r["id"] for r in rows]
    versions = [r["version"] for r in rows]
    keys: list[str] = []
    for r in rows:
        for k in r["payload"]:
            if k not in keys:
                keys.append(k)
    cols = []
    for k in keys:
        values = [r["payload"].get(k, _MISSING) for r in rows]
        cols.append(_encode_column(values, ids))
    v = versions[0] if len(set(versions)) == 1 else versions
    group = {"k": kind, "i": ids, "v": v, "f": keys, "c": cols}
    return _time_ids(group, rows) or group


# Reading ids are "r-" + the device time in hex milliseconds + a 20-hex digest (edge.core.reading):
# the time is already in the device_time column, so a kind whose ids all have that form sends only
# the digests ("j") and the difference of each id's milliseconds from device_time ("jd", left out
# when all are 0). A hub before this form finds no "i" list and refuses the batch instead of storing
# other ids; every id is rebuilt here and compared before this form is chosen.
TIME_ID = re.compile(r"r-([0-9a-f]{12})([0-9a-f]{20})")
TIME_FIELD = "device_time"


def _time_ids(group: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    digests, deltas = [], []
    for r in rows:
        m = TIME_ID.fullmatch(r["id"]) if isinstance(r["id"], str) else None
        dt = r["payload"].get(TIME_FIELD)
        if m is None or not (isinstance(dt, str) and ISO_MS.fullmatch(dt)):
            return None
        digests.append(m.group(2))
        deltas.append(int(m.group(1), 16) - _to_ms(dt))
    compact = {k: v for k, v in group.items() if k != "i"}
    compact.update({"j": digests, "jt": TIME_FIELD, **({"jd": deltas} if any(deltas) else {})})
    try:
        if _rebuilt_ids(compact) != group["i"]:
            return None
    except (ValueError, ProtocolError):
        return None
    return compact


def _rebuilt_ids(g: dict[str, Any]) -> list[str]:
    """The ids of a group in the compact form (see _time_ids)."""
    digests, n = g["j"], len(g["j"])
    deltas = g.get("jd", [0] * n)
    col = g["c"][g["f"].index(g["jt"])]
    if col.get("t") != "ts" or col.get("m") or len(deltas) != n or len(col.get("d", [])) != n:
        raise ProtocolError("compact ids need a complete time column")
    out = []
    for digest, delta, when in zip(digests, deltas, _decode_column(col, [""] * n), strict=True):
        ms = _to_ms(when) + int(delta)
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{20}", digest)) or not 0 <= ms < 16 ** 12:
            raise ProtocolError("a compact id is malformed")
        out.append(f"r-{ms:012x}{digest}")
    return out


class _Missing:
    pass


_MISSING = _Missing()


def _encode_column(values: list[Any], ids: list[str]) -> dict[str, Any]:
    col: dict[str, Any] = {}
    missing = [i for i, v in enumerate(values) if v is _MISSING]
    if missing:
        col["m"] = missing
    present = [v for v in values if v is not _MISSING]
    present_ids = [ids[i] for i, v in enumerate(values) if v is not _MISSING]
    if present == present_ids:
        col["t"] = "id"
    elif present and all(v is None or (isinstance(v, str) and ISO_MS.fullmatch(v)) for v in present) \
            and any(v is not None for v in present):
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


def _dictionary_worth_it(values: list[Any]) -> bool:
    if not values or not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
        return False
    return len({json.dumps(v) for v in values}) <= max(1, len(values) // 3)


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


# What one batch may hold, checked before anything is built per record (a batch of a few
# kilobytes could otherwise describe a hundred million cells). The node's largest batch is
# [sync] batch_max_records (at most 20000); a refused batch is TooBig, which the hub answers
# with 413 so the node splits it (sync/client/controller.py).
MAX_RECORDS = 20000
MAX_COLUMNS = 256            # payload keys of one kind
MAX_CELLS = 500_000          # records x columns, summed over the kinds of a batch
MAX_EXPANDED = 16 << 20      # bytes of JSON after zlib
MAX_JSON_VALUES = 1_000_000  # bounds what json.loads builds (counted as separators, a cheap upper bound)
MAX_DEPTH = 32               # nesting of objects and arrays in one record's payload


def decode_records(payload: bytes, max_bytes: int = MAX_EXPANDED) -> list[dict[str, Any]]:
    """The inverse of encode_records; ProtocolError on anything malformed, TooBig over the limits."""
    try:
        d = _records_inflater(payload)
        text = d.decompress(payload, max_bytes)
        if d.unconsumed_tail:
            raise TooBig(f"batch expands beyond {max_bytes} bytes; send smaller batches")
        check_json_size(text)
        doc = json.loads(text)
        if not isinstance(doc, list):
            raise ProtocolError("batch records must be a list of kinds")
        _check_shape(doc)
        out = []
        for group in doc:
            out.extend(_decode_group(group))
        return out
    except ProtocolError:
        raise
    except RecursionError as e:
        raise ProtocolError("batch records are nested too deeply") from e
    except (zlib.error, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, OSError) as e:
        raise ProtocolError(f"batch records cannot be decoded: {e.__class__.__name__}: {e}") from e


def check_json_size(text: bytes, *, max_values: int = MAX_JSON_VALUES) -> None:
    """Refuse JSON text with too many values before it is parsed. Separators are counted on the
    raw bytes (also inside strings), an upper bound: a legitimate batch is far below it."""
    if text.count(b",") + text.count(b":") > max_values:
        raise TooBig(f"batch holds more than {max_values} values; send smaller batches")


def nesting(value: Any) -> int:
    """How deeply objects and arrays nest in a decoded JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, depth)
            stack.extend((x, depth + 1) for x in v if isinstance(x, (dict, list)))
    return deepest


def _check_shape(doc: list[Any]) -> None:
    """Count records and columns per kind and their product before decoding any column."""
    records = cells = 0
    for g in doc:
        if isinstance(g, dict) and "i" not in g and isinstance(g.get("j"), list):
            g["i"] = g["j"]      # counted here; the ids themselves are rebuilt in _decode_group
        if not isinstance(g, dict) or not isinstance(g.get("i"), list) or not isinstance(g.get("f"), list) \
                or not isinstance(g.get("c"), list):
            raise ProtocolError("each kind needs lists i (ids), f (fields) and c (columns)")
        if len(g["f"]) > MAX_COLUMNS or len(g["c"]) > MAX_COLUMNS:
            raise TooBig(f"a kind with more than {MAX_COLUMNS} fields; send smaller batches")
        records += len(g["i"])
        cells += len(g["i"]) * max(len(g["f"]), len(g["c"]))
    if records > MAX_RECORDS:
        raise TooBig(f"batch holds {records} records, more than {MAX_RECORDS}; send smaller batches")
    if cells > MAX_CELLS:
        raise TooBig(f"batch holds {cells} record fields, more than {MAX_CELLS}; send smaller batches")


def _decode_group(g: dict[str, Any]) -> list[dict[str, Any]]:
    if "j" in g:
        if g.get("jt") not in g["f"]:
            raise ProtocolError("compact ids name no time field")
        g = {**g, "i": _rebuilt_ids(g)}
    ids, n = g["i"], len(g["i"])
    versions = g["v"] if isinstance(g["v"], list) else [g["v"]] * n
    if len(versions) != n:
        raise ProtocolError("version column length does not match")
    payloads: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, col in zip(g["f"], g["c"], strict=True):
        missing = set(col.get("m", []))
        rows = [i for i in range(n) if i not in missing]
        for i, v in zip(rows, _decode_column(col, [ids[i] for i in rows]), strict=True):
            payloads[i][key] = v
    return [{"kind": g["k"], "id": ids[i], "version": versions[i], "payload": payloads[i]} for i in range(n)]


def _decode_column(col: dict[str, Any], ids: list[str]) -> list[Any]:
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
    if t == "dict":
        x = col["x"]
        idx = [x] * len(ids) if isinstance(x, int) else x
        return [col["s"][i] for i in idx]
    if t == "raw":
        return list(col["x"])
    raise ProtocolError(f"unknown column type {t!r}")

