"""A resident's readings as the workbench shows them: latest vitals, trend series, recent rows.
Every query goes through the readings_resident index (resident_id, code, effective_time)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from . import codes
from .reading import utc_iso

SYS, DIA, PULSE, SPO2, TEMP, WEIGHT, HEIGHT, GLUCOSE = ("8480-6", "8462-4", "8867-4", "2708-6", "8310-5",
                                                        "29463-7", "8302-2", "2339-0")
LATEST_CODES = (SYS, DIA, PULSE, GLUCOSE, WEIGHT, SPO2, TEMP, HEIGHT)
ROW_COLUMNS = ("rowid AS seq, id, device_id, code, value, unit, effective_time, receive_time, status, reason,"
               " void_reason, assigned_by")


def latest(store, resident_id: str) -> dict[str, dict[str, Any]]:
    """code -> the newest valid reading of that code."""
    out = {}
    for code in LATEST_CODES:
        row = store.one("SELECT id, value, unit, effective_time, device_id FROM readings"
                        " WHERE resident_id = ? AND code = ? AND status = 'valid'"
                        " ORDER BY effective_time DESC LIMIT 1", (resident_id, code))
        if row:
            out[code] = row
    return out


def series(store, resident_id: str, code: str, since: datetime) -> list[tuple[str, float]]:
    rows = store.conn.execute("SELECT effective_time, value FROM readings WHERE resident_id = ? AND code = ?"
                              " AND status = 'valid' AND effective_time >= ? ORDER BY effective_time",
                              (resident_id, code, utc_iso(since)))
    return [(t, v) for t, v in rows]


def recent(store, resident_id: str, *, limit: int = 20, after_seq: int = 0) -> list[dict[str, Any]]:
    """Newest readings of every status (voided ones too, so the page shows what was withdrawn)."""
    rows = store.query(f"SELECT {ROW_COLUMNS} FROM readings WHERE resident_id = ? AND rowid > ?"
                       " ORDER BY effective_time DESC, rowid DESC LIMIT ?", (resident_id, after_seq, limit))
    for r in rows:
        c = codes.lookup(r["code"])
        r["label_zh"] = c.display_zh if c else r["code"]
        r["label_en"] = c.display_en if c else r["code"]
    return rows


def last_seq(store, resident_id: str) -> int:
    return store.scalar("SELECT coalesce(max(rowid), 0) FROM readings WHERE resident_id = ?", (resident_id,))
