"""The columnar record codec: the compressed records of a batch envelope (sync.protocol).

Records of one kind share keys, and most values repeat (device, code, unit, boot id) or grow
slowly (times). Per kind: ids, versions, one column per payload key, each column stored as
"same as the record id", delta-coded milliseconds, a dictionary, or raw values; then zlib with
a preset dictionary (RECORDS_DICT).
"""
from __future__ import annotations

import bz2
import json
import re
import struct
import zlib
from typing import Any

from .errors import ProtocolError, TooBig
from .record_pairs import decode_of, paired
from .record_columns import ISO_MS, _MISSING, _encode_column, _to_ms, best_column, decode_column, value_key


def encode_records(records: list[dict[str, Any]], *, compact: bool = True) -> bytes:
    """The records' payload of an envelope. `compact` (issue 17.4): the column forms of
    sync.record_columns and the reading digests as bytes after the zlib stream ("jb"), each kind
    checked to decode to exactly its records (else it goes in the forms of before); without it,
    what nodes before issue 17.4 sent."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["kind"], []).append(r)
    if not compact:
        return _deflate([_encode_group(kind, rows) for kind, rows in groups.items()], RECORDS_DICT)
    doc, trailer = [], b""
    for kind, rows in groups.items():
        group = _compact_group(kind, rows) or _encode_group(kind, rows)
        if "j" in group:
            group = {**group, "jb": len(rows)}
            trailer += bytes.fromhex("".join(group.pop("j")))
        doc.append(group)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    # bzip2 sorts a large batch's columns of digits better than zlib (about 1 byte a reading
    # less at 2,000); zlib's preset dictionary wins for small ones, and a single reading may go
    # smaller still as before: the smallest is sent
    forms = [_deflate(doc, RECORDS_DICT_2) + trailer, bz2.compress(text, 9) + trailer]
    if len(records) <= FEW:
        forms.append(encode_records(records, compact=False))
    return min(forms, key=len)


FEW = 32     # a batch of at most this many records is also written as before, and the smaller sent


def _deflate(doc: list[Any], zdict: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
    return z.compress(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()) + z.flush()


def _compact_group(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A kind in the compact column forms, or None unless it decodes to exactly `rows` (the same
    ids, versions and canonical payloads: what the hub digests for idempotency)."""
    group = _encode_group(kind, rows, compact=True)
    try:
        back = _decode_group(json.loads(json.dumps(group, ensure_ascii=False)))
    except (ProtocolError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
        return None
    same = len(back) == len(rows) and all(
        (b["id"], b["version"], _canonical(b["payload"])) == (r["id"], r["version"], _canonical(r["payload"]))
        for b, r in zip(back, rows))
    return group if same else None


def _canonical(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


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
# The second (issue 17.4): the first and then the compact column forms (sync.record_columns) as a
# batch of readings writes them.
RECORDS_DICT_2 = RECORDS_DICT + (
    b'{"t":"=","k":0},{"t":"fx","p":0,"x":[{"t":"fx","p":1,"x":[{"t":"fx","p":3,"z":1,"r":5,"x":['
    b'{"t":"tr","r":5,"d":["jb":1,"jt":"device_time","f":["id","device_id","code","value","unit",'
    b'"device_time","receive_time","effective_time","boot_id","monotonic","clock_status","transport",'
    b'"status","reason","resident_id"],"c":[{"t":"id"},{"t":"dict","s":["')
BZ2_MAGIC = b"BZh"
DICTIONARIES = {zlib.adler32(d): d for d in (RECORDS_DICT, RECORDS_DICT_2)}


def _records_inflater(payload: bytes):
    """A decompressor for a batch's records: bzip2 by its magic (issue 17.4: a large batch of
    readings), else zlib with the preset dictionary its header names."""
    if payload[:3] == BZ2_MAGIC:
        return bz2.BZ2Decompressor()
    if len(payload) >= 6 and payload[1] & 0x20:
        zdict = DICTIONARIES.get(struct.unpack(">I", payload[2:6])[0])
        if zdict is None:
            raise ProtocolError("batch records need a zlib dictionary this hub does not know (a newer node?)")
        return zlib.decompressobj(zdict=zdict)
    return zlib.decompressobj()


def _encode_group(kind: str, rows: list[dict[str, Any]], compact: bool = False) -> dict[str, Any]:
    ids = [r["id"] for r in rows]
    versions = [r["version"] for r in rows]
    keys: list[str] = []
    for r in rows:
        for k in r["payload"]:
            if k not in keys:
                keys.append(k)
    if compact:
        keys = _shared_times_first(keys, rows)
    cols, earlier, times, value_keys, few = [], [], [], [], []
    for k in keys:
        values = [r["payload"].get(k, _MISSING) for r in rows]
        col = best_column(values, ids, earlier, times, value_keys, few) if compact else _encode_column(values, ids)
        if (col["c"]["t"] if col["t"] == "pk" else col["t"]) in ("ts", "tr"):
            times.append(len(earlier))
        if col["t"] in ("dict", "by"):
            few.append(len(earlier))
        cols.append(col)
        earlier.append(values)
        if compact:
            value_keys.append([value_key(v) for v in values])
    if compact:
        cols = paired(cols, earlier)
    v = versions[0] if len(set(versions)) == 1 else versions
    group = {"k": kind, "i": ids, "v": v, "f": keys, "c": cols}
    return _time_ids(group, rows) or group


def _shared_times_first(keys: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The keys with the time columns (in their places) ordered by how often their value changes
    from one record to the next: the readings of one message share a receive_time, so it goes first
    and each device_time is written as a few seconds from it ("tr"). The hub stores payloads with
    sorted keys, so the order of the columns changes nothing there."""
    def changes(k: str) -> int | None:
        values = [r["payload"].get(k, _MISSING) for r in rows]
        if not all(v is _MISSING or v is None or (isinstance(v, str) and ISO_MS.fullmatch(v)) for v in values) \
                or all(v is _MISSING or v is None for v in values):
            return None
        return sum(1 for a, b in zip(values, values[1:]) if a != b)

    counts = {k: changes(k) for k in keys}
    timed = sorted((k for k in keys if counts[k] is not None), key=lambda k: (counts[k], keys.index(k)))
    it = iter(timed)
    return [next(it) if counts[k] is not None else k for k in keys]


# Reading ids are "r-" + the device time in hex milliseconds + a 20-hex digest (edge.core.reading):
# the time is already in the device_time column, so a kind whose ids all have that form sends only
# the digests ("j") and the difference of each id's milliseconds from device_time ("jd", left out
# when all are 0). A hub before this form finds no "i" list and refuses the batch instead of storing
# other ids; every id is rebuilt here and compared before this form is chosen.
TIME_ID = re.compile(r"r-([0-9a-f]{12})([0-9a-f]{20})")
TIME_FIELD = "device_time"
DIGEST_BYTES = 10


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
        if _rebuilt_ids(compact, [r["payload"][TIME_FIELD] for r in rows]) != group["i"]:
            return None
    except (ValueError, ProtocolError):
        return None
    return compact


def _rebuilt_ids(g: dict[str, Any], times: list[Any]) -> list[str]:
    """The ids of a group in the compact form (see _time_ids), from its decoded time column."""
    digests, n = g["j"], len(g["j"])
    deltas = g.get("jd", [0] * n)
    if len(deltas) != n or len(times) != n or not all(isinstance(t, str) and ISO_MS.fullmatch(t) for t in times):
        raise ProtocolError("compact ids need a complete time column")
    out = []
    for digest, delta, when in zip(digests, deltas, times, strict=True):
        ms = _to_ms(when) + int(delta)
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{20}", digest)) or not 0 <= ms < 16 ** 12:
            raise ProtocolError("a compact id is malformed")
        out.append(f"r-{ms:012x}{digest}")
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
        if getattr(d, "unconsumed_tail", b"") or (not d.eof and len(text) >= max_bytes):
            raise TooBig(f"batch expands beyond {max_bytes} bytes; send smaller batches")
        if not d.eof:
            raise ProtocolError("batch records are cut short")
        check_json_size(text)
        doc = json.loads(text)
        if not isinstance(doc, list):
            raise ProtocolError("batch records must be a list of kinds")
        _digests_from(doc, d.unused_data)
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


def _digests_from(doc: list[Any], trailer: bytes) -> None:
    """Put back the reading digests a compact batch sends as bytes after its zlib stream: "jb"
    of them (10 bytes each) for each kind that says so, in the order of the kinds."""
    pos = 0
    for g in doc:
        if isinstance(g, dict) and "jb" in g:
            n = g.pop("jb")
            if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= MAX_RECORDS \
                    or pos + n * DIGEST_BYTES > len(trailer):
                raise ProtocolError("a kind's reading digests are missing from the batch")
            g["j"] = [trailer[pos + i * DIGEST_BYTES:pos + (i + 1) * DIGEST_BYTES].hex() for i in range(n)]
            pos += n * DIGEST_BYTES
    if pos != len(trailer):
        raise ProtocolError(f"{len(trailer) - pos} bytes after the batch's records belong to no kind")


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


def _decode_columns(g: dict[str, Any], ids: list[str]) -> list[list[Any]]:
    columns: list[list[Any]] = []
    for j, (key, col) in enumerate(zip(g["f"], g["c"], strict=True)):
        values = decode_of(col, g["c"][:j], len(ids)) if col.get("t") == "of" else decode_column(col, ids, columns)
        if len(values) != len(ids):
            raise ProtocolError(f"column {key!r} has {len(values)} values for {len(ids)} records")
        columns.append(values)
    return columns


def _decode_group(g: dict[str, Any]) -> list[dict[str, Any]]:
    if "j" in g:       # the ids come from the time column: decoded first with blank ids, then again
        if g.get("jt") not in g["f"]:
            raise ProtocolError("compact ids name no time field")
        blank = _decode_columns(g, [""] * len(g["j"]))
        g = {**g, "i": _rebuilt_ids(g, blank[g["f"].index(g["jt"])])}
    ids, n = g["i"], len(g["i"])
    versions = g["v"] if isinstance(g["v"], list) else [g["v"]] * n
    if len(versions) != n:
        raise ProtocolError("version column length does not match")
    payloads: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, values in zip(g["f"], _decode_columns(g, ids), strict=True):
        for i, v in enumerate(values):
            if v is not _MISSING:
                payloads[i][key] = v
    return [{"kind": g["k"], "id": ids[i], "version": versions[i], "payload": payloads[i]} for i in range(n)]
