"""Two columns of few values written as one dictionary of their pairs (sync.record_codec, column
type "of"): a reading's code follows largely from its device (a blood-pressure monitor sends
systolic, diastolic and pulse, a scale only weight), yet each column alone is a dictionary whose
indexes bzip2 writes apart. As pairs, the first column is a "dict" whose entries may repeat
(one per pair: "bp-1" three times) and the second says, per entry of that dictionary, its own
value: {"t": "of", "k": <the first column>, "s": [<value for entry 0>, ...]}. One index list is
left for both (about 0.17 B a reading less in a month's batch). A hub before this type does not know
"of" and refuses the batch.
"""
from __future__ import annotations

import bz2
import json
from typing import Any

from .errors import ProtocolError


def paired(cols: list[dict[str, Any]], earlier: list[list[Any]]) -> list[dict[str, Any]]:
    """The columns with each pair of dictionaries (the second after the first) written as pairs
    where bzip2 writes that smaller; each column is paired at most once."""
    cols, used = list(cols), set()
    for a in range(len(cols)):
        for b in range(a + 1, len(cols)):
            if a in used or b in used or not _dictionary(cols[a]) or not _dictionary(cols[b]):
                continue
            first, second = _as_pairs(a, earlier[a], earlier[b])
            if _bz2_size([first, second]) < _bz2_size([cols[a], cols[b]]):
                cols[a], cols[b] = first, second
                used.update((a, b))
    return cols


def _dictionary(col: dict[str, Any]) -> bool:
    return col["t"] == "dict" and "m" not in col and isinstance(col.get("x"), list) and len(col["s"]) > 1


def _as_pairs(a: int, first: list[Any], second: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    index: dict[str, int] = {}
    firsts, seconds, x = [], [], []
    for u, v in zip(first, second, strict=True):
        key = json.dumps([u, v], sort_keys=True)
        if key not in index:
            index[key] = len(firsts)
            firsts.append(u)
            seconds.append(v)
        x.append(index[key])
    return {"t": "dict", "s": firsts, "x": x}, {"t": "of", "k": a, "s": seconds}


def _bz2_size(cols: list[dict[str, Any]]) -> int:
    return len(bz2.compress(json.dumps(cols, separators=(",", ":")).encode(), 9))


def decode_of(col: dict[str, Any], columns: list[dict[str, Any]], n: int) -> list[Any]:
    """The values of an "of" column from the dictionary column it names (`columns`: the columns
    before it, as sent)."""
    k, values = col.get("k"), col.get("s")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(columns) \
            or not _dictionary(columns[k]) or not isinstance(values, list) or len(values) != len(columns[k]["s"]):
        raise ProtocolError("a paired column names no dictionary before it with as many entries")
    x = columns[k]["x"]
    if len(x) != n:
        raise ProtocolError("a paired column's dictionary does not cover its kind")
    return [values[i] for i in x]
