"""The broker's journal, read by ingest (the writer is clinic_journal.c, a mosquitto plugin).

The broker appends every QoS 1 reading a device publishes to a segment file in
`<data>/broker/journal/` and fdatasyncs it before its PUBACK; each message reaches ingest tagged
with its record's identity (`clinic-journal: <epoch>:<seq>`). Ingest uses that identity as the
message's delivery (the same record, live or replayed, is stored once), replays the records it has
not committed whenever it (re)connects, and notes how far everything is committed in `committed`
(the watermark); segments wholly below the watermark are deleted. docs/mqtt.md, "The broker's
journal", has the format and why it is safe.
"""
from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from edge.core import durable

log = logging.getLogger(__name__)

PROPERTY = "clinic-journal"
SEGMENT_MAGIC = b"CEJRNL01"
SEGMENT_HEADER = struct.Struct("<8sQQ8x")      # magic, epoch, first seq
RECORD_MAGIC = 0x4C4E524A
RECORD_HEADER = struct.Struct("<IIQHHI")       # magic, length, seq, client, topic, payload lengths
WATERMARK = "committed"


@dataclass(frozen=True)
class Record:
    epoch: int
    seq: int
    client_id: str
    topic: str
    payload: bytes

    @property
    def identity(self) -> str:
        return identity(self.epoch, self.seq)


def identity(epoch: int, seq: int) -> str:
    """The text of the user property the broker adds, and the delivery id ingest derives from it."""
    return f"{epoch:016x}:{seq}"


def parse_identity(text: str) -> tuple[int, int] | None:
    epoch, sep, seq = text.partition(":")
    try:
        return (int(epoch, 16), int(seq)) if sep and len(epoch) == 16 else None
    except ValueError:
        return None


def journal_dir(data_dir: Path) -> Path:
    return data_dir / "broker" / "journal"


def segments(d: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every segment, oldest first."""
    found = []
    for p in d.glob("seg-*.jnl"):
        try:
            found.append((int(p.stem[4:]), p))
        except ValueError:
            continue
    return sorted(found)


@dataclass
class Scan:
    records: list[Record]
    torn: int = 0          # segments whose records ended in something that does not check


def read_segment(path: Path) -> tuple[list[Record], bool]:
    """The records of one segment; True if it ends in a torn record."""
    data = path.read_bytes()
    if len(data) < SEGMENT_HEADER.size:
        return [], True
    magic, epoch, _first = SEGMENT_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        return [], True
    records, at = [], SEGMENT_HEADER.size
    while at + RECORD_HEADER.size + 4 <= len(data):
        rmagic, length, seq, clen, tlen, plen = RECORD_HEADER.unpack_from(data, at)
        if rmagic == 0 and length == 0:
            return records, any(data[at:at + 64])   # the zeros the broker wrote in advance
        body = RECORD_HEADER.size + clen + tlen + plen
        if (rmagic != RECORD_MAGIC or length < body + 4 or at + length > len(data)
                or zlib.crc32(data[at:at + body]) != struct.unpack_from("<I", data, at + body)[0]):
            return records, True
        o = at + RECORD_HEADER.size
        records.append(Record(epoch, seq, data[o:o + clen].decode("utf-8", "replace"),
                              data[o + clen:o + clen + tlen].decode("utf-8", "replace"),
                              bytes(data[o + clen + tlen:at + body])))
        at += length
    return records, False


def scan(d: Path, *, epoch: int | None = None, after: int = 0) -> Scan:
    """Every record above the watermark (`after`, of `epoch`) in every segment, oldest first.
    A torn record (a write cut off by a crash: never acknowledged) ends its segment; each is
    counted and logged, never fatal."""
    result = Scan([])
    segs = segments(d)
    for (first, path), following in zip(segs, [*segs[1:], None]):
        if following and following[0] - 1 <= after and _segment_epoch(path) == epoch:
            continue      # wholly committed (it is deleted at the next watermark)
        try:
            records, torn = read_segment(path)
        except OSError as e:
            log.error("cannot read the broker's journal segment %s: %s", path, e)
            result.torn += 1
            continue
        if epoch is not None:
            records = [r for r in records if r.epoch != epoch or r.seq > after]
        result.records.extend(records)
        result.torn += torn
    if result.torn:
        log.warning("broker journal: %d segment(s) end in a torn record (a write cut off by a crash, never "
                    "acknowledged to the device); ignored", result.torn)
    return result


def watermark(d: Path) -> tuple[int, int] | None:
    """(epoch, seq): every record of that epoch up to seq is committed in the store."""
    try:
        return parse_identity((d / WATERMARK).read_text().strip())
    except OSError:
        return None


def commit_watermark(d: Path, epoch: int, seq: int) -> None:
    """Note the watermark (after the store's commit), then delete the segments wholly below it,
    except the newest (the broker appends to it)."""
    durable.write_file(d / WATERMARK, identity(epoch, seq) + "\n")
    segs = segments(d)
    for (first, path), (next_first, _) in zip(segs, segs[1:]):
        if next_first - 1 <= seq and _segment_epoch(path) == epoch:
            path.unlink(missing_ok=True)


def _segment_epoch(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            magic, epoch, _ = SEGMENT_HEADER.unpack(f.read(SEGMENT_HEADER.size))
    except (OSError, struct.error):
        return None
    return epoch if magic == SEGMENT_MAGIC else None


class Progress:
    """Which records are committed: the watermark moves over every seq committed without a gap."""

    def __init__(self, mark: tuple[int, int] | None) -> None:
        self.epoch, self.done = mark if mark else (None, 0)
        self._ahead: set[int] = set()
        self.highest = self.done

    def committed(self, epoch: int, seq: int) -> bool:
        """Note one committed record; True if the watermark moved."""
        if self.epoch != epoch:   # a new journal (the old one was removed): start over
            self.epoch, self.done, self._ahead, self.highest = epoch, 0, set(), 0
        self.highest = max(self.highest, seq)
        if seq <= self.done:
            return False
        self._ahead.add(seq)
        moved = False
        while self.done + 1 in self._ahead:
            self._ahead.discard(self.done + 1)
            self.done += 1
            moved = True
        return moved

    def replayed(self, epoch: int, through: int) -> None:
        """Everything up to `through` is committed (a replay read the journal that far)."""
        if self.epoch != epoch:
            self.epoch, self._ahead = epoch, set()
        self.done = max(self.done, through)
        self._ahead = {s for s in self._ahead if s > self.done}
        while self.done + 1 in self._ahead:
            self._ahead.discard(self.done + 1)
            self.done += 1
        self.highest = max(self.highest, self.done)

    @property
    def gap(self) -> bool:
        """A later record is committed while an earlier one never arrived live."""
        return self.highest > self.done
