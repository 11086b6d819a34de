"""Bit-packed integer lists of a batch's record columns (sync.record_columns, column type "pk").

A list of large integers that do not repeat (the milliseconds between two messages of a clinic:
anything from seconds to hours) costs about 3.4 bytes each as JSON digits after bzip2, against
about 2.6 bytes of information. Packed, each is written in the fewest bits that hold the
difference from the smallest ("o"); a list whose values are mostly 0 (the readings of one message
share a receive_time) writes a bit per value ("n": which are not 0) and only those not 0. The bits
go as base64 text: bzip2 and zlib code its 64 equally likely letters in 6 bits each, so little of
the base64 third is left on the wire.

Form (docs/api.md, "Batch records"): {"t": "pk", "k": <the list's key in "c">, "c": <a column of
another type without that list>, "h": <the first value, kept apart: the first of a time column's
deltas is the whole time>, "o": <offset>, "w": <bits per value>, "b": <base64>, "n": 1 when a bit
per value says which are not 0}. A hub before this type does not know "pk" and refuses the batch.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from .errors import ProtocolError

MAX_WIDTH = 53
PACKABLE = {"ts": "d", "tr": "d", "fx": "x"}     # column types and the key of their integer list


def packed_forms(col: dict[str, Any]) -> list[dict[str, Any]]:
    """The packed forms of a column whose integer list is all integers (none, else)."""
    key = PACKABLE.get(col["t"])
    values = col.get(key) if key else None
    if not isinstance(values, list) or len(values) < 2 or not all(type(v) is int for v in values):
        return []
    rest = {k: v for k, v in col.items() if k != key}
    head, tail = values[0], values[1:]
    out = [_pack(rest, key, head, tail, tail, flags=False)]
    nonzero = [v for v in tail if v != 0]
    if nonzero and len(nonzero) < len(tail):
        out.append(_pack(rest, key, head, tail, nonzero, flags=True))
    return [c for c in out if c is not None]


def _pack(rest: dict[str, Any], key: str, head: int, tail: list[int], values: list[int], *, flags: bool):
    lo = min(values) if values else 0
    width = max(values, default=lo) - lo
    width = width.bit_length()
    if width > MAX_WIDTH:
        return None
    bits, n = 0, 0
    if flags:
        for v in tail:
            bits, n = (bits << 1) | (v != 0), n + 1
    for v in values:
        bits, n = (bits << width) | (v - lo), n + width
    col = {"t": "pk", "k": key, "c": rest, "h": head, "o": lo, "w": width, "b": _base64(bits, n)}
    if flags:
        col["n"] = 1
    return col


def unpacked(col: dict[str, Any], n: int) -> dict[str, Any]:
    """The column of a "pk" column with its integer list put back (n: the values it holds)."""
    key, inner, width, lo, head = col.get("k"), col.get("c"), col.get("w"), col.get("o"), col.get("h")
    if key not in PACKABLE.values() or not isinstance(inner, dict) or PACKABLE.get(inner.get("t")) != key \
            or key in inner:
        raise ProtocolError("a packed column names no list of a packable column")
    if not all(type(v) is int for v in (width, lo, head)) or not 0 <= width <= MAX_WIDTH or n < 1:
        raise ProtocolError("a packed column's width, offset or first value is malformed")
    count = n - 1
    take = _Bits(col.get("b"), count * (width + (col.get("n") == 1)))
    if col.get("n") == 1:
        nonzero = [take(1) for _ in range(count)]
        tail = [take(width) + lo if f else 0 for f in nonzero]
    elif "n" in col:
        raise ProtocolError("a packed column's flag n must be 1")
    else:
        tail = [take(width) + lo for _ in range(count)]
    take.end()
    return {**inner, key: [head, *tail]}


class _Bits:
    """The bits of a packed column ("b", base64), read a value at a time. `most`: how many bits its
    values can take, checked before anything is built from them (a batch of a few kilobytes must
    not make the hub shift a megabyte once a value)."""

    def __init__(self, text: Any, most: int):
        if not isinstance(text, str):
            raise ProtocolError("a packed column has no bits")
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ProtocolError("a packed column's bits are not base64") from e
        if len(raw) * 8 >= most + 8:
            raise ProtocolError("a packed column holds more bits than its values")
        self.total, self.pos = len(raw) * 8, 0
        self.bits = format(int.from_bytes(raw, "big"), "b").zfill(self.total) if raw else ""

    def __call__(self, w: int) -> int:
        if self.pos + w > self.total:
            raise ProtocolError("a packed column is cut short")
        self.pos += w
        return int(self.bits[self.pos - w:self.pos], 2) if w else 0

    def end(self) -> None:
        if self.total - self.pos >= 8:
            raise ProtocolError("a packed column holds more bits than its values")


# Column type "pg" (packed by group): the values of a float column packed in bits per group of an
# earlier column "k" of few values (a reading's value by its code: systolic 95-185 needs 7 bits,
# SpO2 88-100 4, weight to 0.1 kg 10), each group with its places, offset and width in "g"
# ([p, o, w] for each distinct value of column k, in the order they first appear), the bits in
# "b" in the order of the records. The values of one code cluster; as digits bzip2 cannot see
# which code each belongs to.


def grouped_forms(values: list[Any], earlier: list[list[Any]], few: list[int], places, key) -> list[dict[str, Any]]:
    """The "pg" forms of a column of floats (`places`: the fewest decimal places of a list of
    values or None, `key`: a value's identity, both from sync.record_columns)."""
    if not values or not all(type(v) is float for v in values):
        return []
    out = []
    for k in few:
        order = _groups([key(v) for v in earlier[k]])
        members: list[list[float]] = [[] for _ in range(max(order, default=-1) + 1)]
        for g, v in zip(order, values):
            members[g].append(v)
        spec = []
        for m in members:
            p = places(m)
            if p is None:
                break
            ints = [round(v * 10 ** p) for v in m]
            spec.append([p, min(ints), (max(ints) - min(ints)).bit_length()])
        else:
            bits, n = 0, 0
            for g, v in zip(order, values):
                p, lo, w = spec[g]
                bits, n = (bits << w) | (round(v * 10 ** p) - lo), n + w
            if all(w <= MAX_WIDTH for _p, _o, w in spec):
                out.append({"t": "pg", "k": k, "g": spec, "b": _base64(bits, n)})
    return out


def _groups(keys: list[Any]) -> list[int]:
    seen: dict[Any, int] = {}
    return [seen.setdefault(k, len(seen)) for k in keys]


def _base64(bits: int, n: int) -> str:
    pad = -n % 8
    return base64.b64encode((bits << pad).to_bytes((n + pad) // 8, "big")).decode().rstrip("=")


def decode_grouped(col: dict[str, Any], ref: list[Any], key, max_places: int) -> list[float]:
    """The values of a "pg" column, given the decoded earlier column it names (`ref`)."""
    order, spec, text = _groups([key(v) for v in ref]), col.get("g"), col.get("b")
    if not isinstance(spec, list) or len(spec) != max(order, default=-1) + 1 or not all(
            isinstance(s, list) and len(s) == 3 and all(type(x) is int for x in s)
            and 0 <= s[0] <= max_places and 0 <= s[2] <= MAX_WIDTH and abs(s[1]) < 2 ** 53 for s in spec):
        raise ProtocolError("a column packed by group needs [places, offset, width] for each group")
    take, out = _Bits(text, sum(spec[g][2] for g in order)), []
    for g in order:
        p, lo, w = spec[g]
        n = take(w) + lo
        if abs(n) >= 2 ** 53:
            raise ProtocolError("a packed value is out of range")
        out.append(n / 10 ** p)
    take.end()
    return out
