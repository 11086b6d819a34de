"""What a new follow-up form opens with ("只录一次": nothing the devices or the last visit already
know is typed again):

- today's valid device readings attached to the resident (latest per code, the clinic's local
  day), with the reading id kept per field so the saved form says where each value came from;
- height: today's reading, else the last recorded height (a reading, or the last visit's);
  BMI computed from it;
- lifestyle, targets and medications carried forward from the last visit on the same form;
- the rules' suggestions: classification, next step and date, urgent alerts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..reading import utc_iso
from . import records, rules
from .fields import BY_NAME, MEDICATION_SLOTS, fields_for, lifestyle_fields

READING_FIELDS = {code: name for name, code in records.DEVICE_FIELDS.items()}
TEMPERATURE = "8310-5"


@dataclass
class Prefill:
    values: dict[str, Any]
    sources: dict[str, str]                 # field -> reading id
    suggestions: dict[str, Any]
    age: int | None
    last: dict | None                       # the last visit on this form (records.get shape)
    carried: list[str] = field(default_factory=list)
    reading_times: dict[str, str] = field(default_factory=dict)


def local_day_bounds(day: date, tz: str) -> tuple[str, str]:
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time.min, zone)
    return utc_iso(start), utc_iso(start + timedelta(days=1))


def readings_of_day(store, resident_id: str, day: date, tz: str) -> dict[str, dict]:
    """code -> the latest valid reading attached to the resident on that local day."""
    lo, hi = local_day_bounds(day, tz)
    rows = store.query("SELECT id, code, value, effective_time, device_id FROM readings WHERE resident_id = ?"
                       " AND status = 'valid' AND effective_time >= ? AND effective_time < ?"
                       " ORDER BY effective_time", (resident_id, lo, hi))
    return {r["code"]: r for r in rows}     # later rows win


def last_height(store, resident_id: str) -> tuple[float, str | None] | None:
    row = store.one("SELECT id, value FROM readings WHERE resident_id = ? AND code = '8302-2'"
                    " AND status = 'valid' ORDER BY effective_time DESC LIMIT 1", (resident_id,))
    return (row["value"], row["id"]) if row else None


def build(store, *, resident_id: str, form: str, today: date, tz: str) -> Prefill:
    resident = store.one("SELECT birth_date FROM residents WHERE id = ?", (resident_id,)) or {}
    birth = date.fromisoformat(resident["birth_date"]) if resident.get("birth_date") else None
    age = rules.age_on(birth, today)
    values: dict[str, Any] = {"visit_date": today.isoformat(), "visit_mode": "1"}
    sources, times = {}, {}
    names = {f.name for f in fields_for(form)}
    day = readings_of_day(store, resident_id, today, tz)
    for code, r in day.items():
        name = READING_FIELDS.get(code)
        if name in names:
            f = BY_NAME[name]
            values[name] = int(round(r["value"])) if f.kind == "int" else round(r["value"], f.decimals)
            sources[name] = r["id"]
            times[name] = r["effective_time"]
    if TEMPERATURE in day:
        values["temperature"] = day[TEMPERATURE]["value"]
    last = records.last_visit(store, resident_id, form, before=None)
    carried = _carry_forward(values, last, form)
    if values.get("height") is None:
        h = last_height(store, resident_id)
        if h:
            values["height"], sources["height"] = round(h[0], 1), h[1]
        elif last and last["values"].get("height"):
            values["height"] = last["values"]["height"]
    previous = last["values"].get("classification") if last else None
    sugg = rules.suggestions(form, values, age=age, previous=previous, visit_date=today)
    for name in ("classification", "next_step", "next_visit_date", "bmi"):
        if sugg.get(name) is not None:
            values[name] = sugg[name]
    return Prefill(values, sources, sugg, age, last, carried, times)


def _carry_forward(values: dict, last: dict | None, form: str) -> list[str]:
    if not last:
        return []
    carried = []
    for name in lifestyle_fields(form):
        v = last["values"].get(name)
        if v not in (None, "", []) and values.get(name) is None:
            values[name] = v
            carried.append(name)
    return carried


def flat(values: dict[str, Any]) -> dict[str, Any]:
    """The values as form inputs: medications become med_N_name / med_N_times / med_N_dose."""
    out = {k: v for k, v in values.items() if k != "medications"}
    for n, m in enumerate((values.get("medications") or [])[:MEDICATION_SLOTS], start=1):
        out[f"med_{n}_name"], out[f"med_{n}_times"] = m["name"], m["times_per_day"]
        out[f"med_{n}_dose"] = f"{m['dose_mg']:g}"
    return out
