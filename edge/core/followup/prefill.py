"""What a new follow-up form opens with ("只录一次": nothing the devices or the last visit already
know is typed again):

- the readings of this visit's measuring session only (edge.core.measuring.visit_session; nothing
  else, so a reading of another visit or another patient never fills the form): BP as the mean of
  the last two measurements (followup.measurements), the latest value of the other codes, glucose
  only when the device marked it fasting; the reading id(s) kept per field so the saved form says
  where each value came from;
- height: the session's reading, else the last recorded height (a reading, or the last visit's),
  marked as carried; BMI computed from it;
- lifestyle, targets and medications carried forward from the last visit on the same form;
- the rules' suggestions: classification, next step and date, urgent alerts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from .. import measuring
from . import measurements as m
from . import records, rules
from .fields import BY_NAME, MEDICATION_SLOTS, fields_for, lifestyle_fields

READING_FIELDS = {code: name for name, code in records.DEVICE_FIELDS.items()}
TEMPERATURE = "8310-5"


@dataclass
class Prefill:
    values: dict[str, Any]
    sources: dict[str, Any]                 # field -> reading id, or the ids of a mean
    suggestions: dict[str, Any]
    age: int | None
    last: dict | None                       # the last visit on this form (records.get shape)
    carried: list[str] = field(default_factory=list)
    session: dict | None = None             # the visit's measuring session
    bp: list[dict] = field(default_factory=list)          # its BP measurements (measurements.bp_measurements)
    bp_chosen: list[str] = field(default_factory=list)    # keys of those averaged by default
    offered: list[dict] = field(default_factory=list)     # its other readings, with the field they can fill


def day_start(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, ZoneInfo(tz))


def last_height(store, resident_id: str) -> tuple[float, str | None] | None:
    row = store.one("SELECT id, value FROM readings WHERE resident_id = ? AND code = '8302-2'"
                    " AND status = 'valid' ORDER BY effective_time DESC LIMIT 1", (resident_id,))
    return (row["value"], row["id"]) if row else None


def build(store, *, resident_id: str, form: str, today: date, tz: str) -> Prefill:
    resident = store.one("SELECT birth_date FROM residents WHERE id = ?", (resident_id,)) or {}
    birth = date.fromisoformat(resident["birth_date"]) if resident.get("birth_date") else None
    age = rules.age_on(birth, today)
    values: dict[str, Any] = {"visit_date": today.isoformat(), "visit_mode": "1"}
    names = {f.name for f in fields_for(form)}
    session = measuring.visit_session(store, resident_id, form, since=day_start(today, tz))
    groups = measuring.session_measurements(store, session["id"]) if session else []
    bp = m.bp_measurements(groups)
    chosen = m.default_bp(bp)
    bp_values, sources = m.bp_values(chosen)
    values.update({k: v for k, v in bp_values.items() if k in names})
    sources = {k: v for k, v in sources.items() if k in names}
    offered = _offer_others(groups, names, values, sources)
    last = records.last_visit(store, resident_id, form, before=None)
    carried = _carry_forward(values, last, form)
    if values.get("height") is None:
        h = last_height(store, resident_id)          # an earlier visit's height: carried, not measured
        if h or (last and last["values"].get("height")):
            values["height"] = round(h[0], 1) if h else last["values"]["height"]
            carried.append("height")
    previous = last["values"].get("classification") if last else None
    sugg = rules.suggestions(form, values, age=age, previous=previous, visit_date=today)
    for name in ("classification", "next_step", "next_visit_date", "bmi"):
        if sugg.get(name) is not None:
            values[name] = sugg[name]
    return Prefill(values, sources, sugg, age, last, carried, session, bp, [c["key"] for c in chosen], offered)


def _offer_others(groups: list[dict], names: set, values: dict, sources: dict) -> list[dict]:
    """Readings other than BP: each offered for its field; the latest fills it (glucose: only a
    fasting one, measurements.fasting_glucose_use). Temperature goes to the rules only."""
    offered = []
    for g in groups:
        for r in g["readings"]:
            if r["code"] in m.BP_CODES_SET:
                continue
            if r["code"] == TEMPERATURE:
                values["temperature"] = r["value"]
                continue
            name = READING_FIELDS.get(r["code"])
            if name not in names:
                continue
            use = m.fasting_glucose_use(r) if name == "fbg" else "fills"
            f = BY_NAME[name]
            value = int(round(r["value"])) if f.kind == "int" else round(r["value"], f.decimals)
            offered.append({"field": name, "id": r["id"], "value": value, "device_id": r["device_id"],
                            "time": r["effective_time"], "use": use, "meal": m.meal(r)})
            if use == "fills":                     # oldest first: the latest one wins
                values[name], sources[name] = value, r["id"]
    return offered


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
