"""Clock offset learning and correction of readings taken while the wall clock was wrong.

Each signed hub answer gives the hub's time; with the node's wall clock and monotonic time
taken around the exchange it yields an anchor (boot id, monotonic, true time). A reading stored
with clock_status 'suspect' kept its own (boot id, monotonic): if its boot has an anchor, its
true time is anchor time + (monotonic - anchor monotonic). A reading from a boot that ended
without any anchor cannot be corrected and is flagged 'uncorrectable'. Either way the reading is
sent again to the hub as a new version, with its original times kept in `meta`.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from edge.core import audit, outbox
from edge.core.reading import parse_iso, utc_iso

from . import state

UPSTREAM = ("id", "device_id", "code", "value", "unit", "device_time", "receive_time", "effective_time",
            "boot_id", "monotonic", "clock_status", "transport", "status", "reason", "resident_id")


def learn(store, *, boot_id: str, hub_time: str, wall_before: float, wall_after: float,
          mono_before: float, mono_after: float, now: datetime) -> float:
    """Record one anchor from a signed exchange; returns the offset (hub minus node wall), seconds."""
    hub = parse_iso(hub_time)
    wall_mid = (wall_before + wall_after) / 2
    mono_mid = (mono_before + mono_after) / 2
    offset = hub.timestamp() - wall_mid
    with store.atomic() as conn:
        conn.execute("INSERT OR REPLACE INTO sync_time_anchors (boot_id, monotonic, hub_time, wall_time, offset_s,"
                     " rtt_s) VALUES (?,?,?,?,?,?)",
                     (boot_id, mono_mid, hub_time, utc_iso(datetime.fromtimestamp(wall_mid, timezone.utc)),
                      offset, max(0.0, mono_after - mono_before)))
        state.put(conn, "clock_offset_s", round(offset, 3), now)
    return offset


def _anchor(conn, boot_id: str):
    return conn.execute("SELECT monotonic, hub_time FROM sync_time_anchors WHERE boot_id = ?"
                        " ORDER BY rtt_s, monotonic DESC LIMIT 1", (boot_id,)).fetchone()


def correct(store, *, current_boot: str, now: datetime) -> dict[str, int]:
    """Correct or flag every 'suspect' reading it can; one transaction."""
    counts = {"corrected": 0, "uncorrectable": 0}
    with store.atomic() as conn:
        rows = [dict(r) for r in conn.execute(
            f"SELECT {', '.join(UPSTREAM)}, meta FROM readings WHERE clock_status = 'suspect'")]
        for r in rows:
            anchor = _anchor(conn, r["boot_id"])
            if anchor is None and r["boot_id"] == current_boot:
                continue                      # this boot will get an anchor at the next exchange
            before = {k: r[k] for k in ("receive_time", "effective_time", "clock_status")}
            meta = json.loads(r["meta"] or "{}")
            meta["clock_original"] = before
            if anchor is not None:
                true = parse_iso(anchor[1]) + timedelta(seconds=r["monotonic"] - anchor[0])
                was_receive = r["effective_time"] == r["receive_time"]
                r["receive_time"] = utc_iso(true)
                if was_receive:
                    r["effective_time"] = r["receive_time"]
                r["clock_status"] = "corrected"
            else:
                r["clock_status"] = "uncorrectable"
            counts[r["clock_status"]] += 1
            conn.execute("UPDATE readings SET receive_time = ?, effective_time = ?, clock_status = ?, meta = ?"
                         " WHERE id = ?", (r["receive_time"], r["effective_time"], r["clock_status"],
                                          json.dumps(meta, ensure_ascii=False), r["id"]))
            version = (conn.execute("SELECT max(version) FROM outbox WHERE kind = 'reading' AND record_id = ?",
                                    (r["id"],)).fetchone()[0] or 1) + 1
            payload = {k: r[k] for k in UPSTREAM}
            outbox.add(conn, kind="reading", record_id=r["id"], payload=payload, at=now, version=version)
            audit.append(conn, actor="sync", action=f"reading.clock_{r['clock_status']}", entity="reading",
                         entity_id=r["id"], at=now, before=before,
                         after={k: r[k] for k in ("receive_time", "effective_time", "clock_status")})
    return counts
