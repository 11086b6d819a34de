"""The check day (体检日): a village's elders go through stations, identified once at registration.

Registration finds the resident (ID number, or the resident id on the printed slip) and gives a
queue number. A station calls a registered resident: its device (checkday_stations) then measures
for that resident only, through a station session (edge.core.measuring.start_for_device: one
device, one resident at a time; calling the next resident ends the previous one's session).
The BP station says the arm with each call. The doctor's station opens the resident's 健康体检表,
filled from every station's readings of the day (healthcheck.prefill). `board` is the station
list: who is waiting, who is being measured, who is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from .. import audit, idnumber, measuring
from ..errors import NotFound, ValidationError
from ..reading import utc_iso
from ..residents import by_id_number

# (station, Chinese, English, measured by a device)
STATIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("registration", "登记", "Registration", False),
    ("bp", "血压", "Blood pressure", True),
    ("body", "身高体重腰围", "Height, weight, waist", True),
    ("glucose", "血糖", "Glucose", True),
    ("urine", "尿常规", "Urinalysis", True),
    ("ecg", "心电图", "ECG", True),
    ("doctor", "医生", "Doctor", False),
)
STATION_NAMES = tuple(s[0] for s in STATIONS)
MEASURING = tuple(s[0] for s in STATIONS if s[3])


@dataclass(frozen=True)
class Row:
    resident_id: str
    name: str
    seq: int
    called_at: str | None
    done_at: str | None


def _station(station: str) -> str:
    if station not in STATION_NAMES:
        raise ValidationError(f"unknown station {station!r}", "station")
    return station


def set_device(store, station: str, device_id: str | None, *, now: datetime) -> None:
    if _station(station) not in MEASURING:
        raise ValidationError("this station measures nothing", "station")
    with store.atomic() as conn:
        conn.execute("INSERT INTO checkday_stations VALUES (?,?,?) ON CONFLICT (station) DO UPDATE"
                     " SET device_id = excluded.device_id, updated_at = excluded.updated_at",
                     (station, device_id or None, utc_iso(now)))


def device_of(store, station: str) -> str | None:
    row = store.one("SELECT device_id FROM checkday_stations WHERE station = ?", (station,))
    return row["device_id"] if row else None


def find(store, text: str) -> dict:
    """The resident an ID number (18 digits, checked) or a slip's resident id names."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("give the ID number or scan the slip", "who")
    if len(text) == 18:
        text = text.upper()
        if not idnumber.is_valid(text):
            raise ValidationError(f"{text} is not a valid ID number (check character)", "who")
        row = store.one("SELECT id, name FROM residents WHERE id = ?", (by_id_number(store.conn, text),))
    else:
        row = store.one("SELECT id, name FROM residents WHERE id = ? AND voided_at IS NULL", (text,))
    if row is None:
        raise NotFound(f"no resident with {text}")
    return row


def register(store, day: date, who: str, *, now: datetime, actor: str) -> dict:
    """Register a resident for the day once; registering again returns the same queue number."""
    r = find(store, who)
    with store.atomic() as conn:
        have = conn.execute("SELECT seq FROM checkday_visits WHERE day = ? AND resident_id = ?",
                            (day.isoformat(), r["id"])).fetchone()
        if have:
            return {**r, "seq": have[0]}
        seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM checkday_visits WHERE day = ?",
                           (day.isoformat(),)).fetchone()[0]
        conn.execute("INSERT INTO checkday_visits VALUES (?,?,?,?,?)", (day.isoformat(), r["id"], seq, utc_iso(now),
                                                                          actor))
        conn.execute("INSERT INTO checkday_steps (day, resident_id, station, called_at, done_at) VALUES (?,?,?,?,?)",
                     (day.isoformat(), r["id"], "registration", utc_iso(now), utc_iso(now)))
        audit.append(conn, actor=actor, action="checkday.register", entity="resident", entity_id=r["id"], at=now,
                     after={"day": day.isoformat(), "seq": seq})
    return {**r, "seq": seq}


def call(store, day: date, station: str, resident_id: str, *, now: datetime, actor: str,
         arm: str | None = None) -> int | None:
    """The station calls a registered resident; a measuring station's device now measures them.
    Returns the station session's id (None for a station without a device)."""
    _station(station)
    if station == "bp" and arm is None:
        raise ValidationError("choose the arm before measuring", "arm")
    with store.atomic() as conn:
        if not conn.execute("SELECT 1 FROM checkday_visits WHERE day = ? AND resident_id = ?",
                            (day.isoformat(), resident_id)).fetchone():
            raise ValidationError("register the resident first", "resident_id")
        session_id = None
        if station in MEASURING:
            row = conn.execute("SELECT device_id FROM checkday_stations WHERE station = ?", (station,)).fetchone()
            if row is None or not row[0]:
                raise ValidationError("choose this station's device first", "device_id")
            session_id = measuring.start_for_device(conn, resident_id, row[0], now=now, actor=actor, arm=arm,
                                                    minutes=30)
        conn.execute("INSERT INTO checkday_steps (day, resident_id, station, called_at, session_id) VALUES (?,?,?,?,?)"
                     " ON CONFLICT (day, resident_id, station) DO UPDATE SET called_at = excluded.called_at,"
                     " session_id = excluded.session_id, done_at = NULL",
                     (day.isoformat(), resident_id, station, utc_iso(now), session_id))
    return session_id


def done(store, day: date, station: str, resident_id: str, *, now: datetime, actor: str) -> None:
    """The resident leaves the station: its device stops measuring for them."""
    _station(station)
    with store.atomic() as conn:
        cur = conn.execute("UPDATE checkday_steps SET done_at = ? WHERE day = ? AND resident_id = ? AND station = ?"
                           " AND done_at IS NULL", (utc_iso(now), day.isoformat(), resident_id, station))
        if cur.rowcount == 0:
            raise ValidationError("the station has not called this resident", "resident_id")
        row = conn.execute("SELECT device_id FROM checkday_stations WHERE station = ?", (station,)).fetchone()
        if station in MEASURING and row and row[0]:
            session = measuring.open_device_session(conn, row[0], utc_iso(now))
            if session and session["resident_id"] == resident_id:
                measuring.end_for_device(conn, row[0], now=now, actor=actor)


def board(store, day: date, station: str) -> dict[str, list[Row]]:
    """The station list: waiting (registered, not called here), being measured, done."""
    _station(station)
    rows = store.query("SELECT v.resident_id, r.name, v.seq, s.called_at, s.done_at FROM checkday_visits v"
                       " JOIN residents r ON r.id = v.resident_id LEFT JOIN checkday_steps s"
                       " ON s.day = v.day AND s.resident_id = v.resident_id AND s.station = ?"
                       " WHERE v.day = ? ORDER BY v.seq", (station, day.isoformat()))
    out: dict[str, list[Row]] = {"waiting": [], "called": [], "done": []}
    for r in rows:
        row = Row(r["resident_id"], r["name"], r["seq"], r["called_at"], r["done_at"])
        out["done" if r["done_at"] else "called" if r["called_at"] else "waiting"].append(row)
    return out
