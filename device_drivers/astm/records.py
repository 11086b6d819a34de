"""ASTM E1394 (LIS02-A2) records: H, P, O, R, C, L (and M, Q, S, passed over).

The delimiters are the ones the header declares in H.2 (field, repeat, component, escape:
usually `|\\^&`). Fields are numbered as in the standard: field 1 is the record type, so
`R.4` (value) is `record.field(4)`. Field lists: docs/devices.md, ASTM records (python-astm `records.py`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .codec import AstmFrameError

RECORD_TYPES = frozenset("HPORCLMQS")
MAX_RECORDS = 10_000


@dataclass(frozen=True)
class Delimiters:
    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    def unescape(self, text: str) -> str:
        if self.escape not in text:
            return text
        for code, char in (("F", self.field), ("S", self.component), ("R", self.repeat),
                           ("E", self.escape)):
            text = text.replace(f"{self.escape}{code}{self.escape}", char)
        return text


DEFAULT_DELIMITERS = Delimiters()


@dataclass(frozen=True)
class Record:
    type: str
    fields: tuple[str, ...]         # fields[0] is the type itself (field 1)
    text: str
    delimiters: Delimiters

    def field(self, n: int) -> str:
        """Field n (1-based, as numbered in E1394), unescaped; '' when absent."""
        raw = self.fields[n - 1] if 0 < n <= len(self.fields) else ""
        return self.delimiters.unescape(raw)

    def components(self, n: int) -> list[str]:
        raw = self.fields[n - 1] if 0 < n <= len(self.fields) else ""
        first_repeat = raw.split(self.delimiters.repeat)[0]
        return [self.delimiters.unescape(c) for c in first_repeat.split(self.delimiters.component)]


def header_delimiters(line: str) -> Delimiters:
    """The delimiters an H record declares in its first five characters (`H|\\^&`)."""
    if len(line) < 5 or line[0] != "H":
        raise AstmFrameError("the header record must start with H and declare its delimiters (H|\\^&)")
    d = Delimiters(line[1], line[2], line[3], line[4])
    chars = (d.field, d.repeat, d.component, d.escape)
    if len(set(chars)) != 4 or any(c.isalnum() or c in "\r\n " for c in chars):
        raise AstmFrameError(f"the header declares unusable delimiters {''.join(chars)!r}")
    return d


def parse_records(text: bytes, delimiters: Delimiters | None = None) -> tuple[list[Record], Delimiters]:
    """Records of one message, CR-separated (LF and CRLF tolerated), and the delimiters in force."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("latin-1")   # byte-for-byte; values of interest are ASCII
    lines = [ln for ln in re.split(r"\r\n|\r|\n", text) if ln.strip()]
    if len(lines) > MAX_RECORDS:
        raise AstmFrameError(f"more than {MAX_RECORDS} records in one message")
    delims = delimiters or DEFAULT_DELIMITERS
    out = []
    for n, line in enumerate(lines, 1):
        kind = line[0].upper()
        if kind not in RECORD_TYPES:
            raise AstmFrameError(f"record {n} has an unknown type {line[:1]!r}; expected one of H P O R C L M Q S")
        if kind == "H":
            delims = header_delimiters(line)
            fields = (line[0], line[1:5], *line[6:].split(delims.field)) if len(line) > 5 else (line[0], line[1:5])
        else:
            if len(line) > 1 and line[1] != delims.field:
                raise AstmFrameError(f"record {n} ({kind}) is not followed by the field delimiter {delims.field!r}")
            fields = tuple(line.split(delims.field))
        out.append(Record(kind, tuple(fields), line, delims))
    return out, delims
