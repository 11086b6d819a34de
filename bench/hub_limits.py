"""How fast and how small the hub refuses a decompression/cell bomb (issue 14 item 4), in process.

    .venv/bin/python bench/hub_limits.py

Prints, for batches of growing records x fields (all "same as the id" columns, a few kB of zlib),
the compressed size, the time decode_records takes to answer and the peak Python memory it used."""
from __future__ import annotations

import json
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

# bench/sync.py would shadow the sync package when this runs from bench/
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync import protocol, record_codec  # noqa: E402


def bomb(records: int, columns: int) -> bytes:
    group = {"k": "reading", "i": [f"r{i}" for i in range(records)], "v": 1,
             "f": [f"c{j}" for j in range(columns)], "c": [{"t": "id"}] * columns}
    return zlib.compress(json.dumps([group]).encode(), 9)


def main() -> None:
    print(f"{'records':>8} {'fields':>7} {'cells':>11} {'zlib B':>8} {'answer':<8} {'ms':>8} {'peak MB':>8}")
    for records, columns in ((100, 10), (5000, 16), (5000, 1000), (20000, 256), (20000, 5000)):
        payload = bomb(records, columns)
        tracemalloc.start()
        t = time.perf_counter()
        try:
            record_codec.decode_records(payload)
            answer = "decoded"
        except protocol.TooBig:
            answer = "413"
        ms = (time.perf_counter() - t) * 1000
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(f"{records:>8} {columns:>7} {records * columns:>11} {len(payload):>8} {answer:<8} {ms:>8.1f} {peak:>8.1f}")


if __name__ == "__main__":
    main()
