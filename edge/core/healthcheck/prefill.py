"""What a 健康体检表 opens with: the values the clinic's devices measured for the resident on the
check day, each with the reading it came from ("只录一次": nothing measured is typed again).

Only readings taken in the resident's own measuring sessions of that day count (the clinic's
devices measure one resident at a time, edge.core.measuring), so another resident's reading never
fills this form; so do the check day's readings a doctor assigned to the resident from the inbox
after the fact (they have no session: a BP among them has no arm). BP goes to the arm its session was started for; a BP of a session with no arm is
offered, not filled. For every other field the latest reading of its code fills it. BMI is
computed from the form's height and weight (体重/身高², 填表说明 3) and marked as computed.
Laboratory results (the township's analysers over ASTM or HL7, matched to the resident by the ID
number they carry, edge.core.ingest.attach) have no session: those of LAB_FIELDS from the last
LAB_DAYS days are used too, the check day's session readings winning over them. The ECG machine's
conclusion (HL7 OBX 8601-7) fills 心电图 (normal/abnormal) and its text fills 心电图异常.
The 主要用药情况 rows are proposed from the resident's follow-ups and last check (healthcheck.carry),
each marked proposed until the doctor confirms it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ..followup.prefill import day_start
from ..followup.rules import age_on
from ..reading import utc_iso
from . import carry
from .fields import BY_NAME
from .records import DEVICE_FIELDS, field_codes, shown

BP_FIELDS = {("8480-6", "left"): "bp_left_sbp", ("8462-4", "left"): "bp_left_dbp",
             ("8480-6", "right"): "bp_right_sbp", ("8462-4", "right"): "bp_right_dbp"}
OTHER_FIELDS = {code: name for name, (_, arm) in DEVICE_FIELDS.items() if arm is None
                for code in field_codes(name)}
LAB_FIELDS = ("fbg", "hba1c", "ecg", "hb", "wbc", "plt", "alt", "ast", "albumin", "tbil", "dbil", "creatinine", "urea",
              "potassium", "sodium", "tc", "tg", "ldl", "hdl")
LAB_CODES = tuple(code for name in LAB_FIELDS for code in field_codes(name))
LAB_TRANSPORTS = ("astm", "hl7", "mllp")
LAB_DAYS = 90      # [U] how old a result the specification lets the check reuse (docs/health-check.md)


@dataclass
class Prefill:
    values: dict[str, Any]
    sources: dict[str, str]                       # field -> reading id
    readings: dict[str, dict]                     # field -> the reading (device, transport, time)
    age: int | None
    computed: list[str] = field(default_factory=list)
    unplaced_bp: list[dict] = field(default_factory=list)    # BP of a session with no arm chosen


def build(store, *, resident_id: str, today: date, tz: str) -> Prefill:
    resident = store.one("SELECT birth_date FROM residents WHERE id = ?", (resident_id,)) or {}
    birth = date.fromisoformat(resident["birth_date"]) if resident.get("birth_date") else None
    values: dict[str, Any] = {"check_date": today.isoformat()}
    sources: dict[str, str] = {}
    used: dict[str, dict] = {}
    unplaced: list[dict] = []
    rows = store.query("SELECT r.id, r.code, r.value, r.unit, r.device_id, r.transport, r.effective_time, s.arm"
                       " FROM readings r JOIN measuring_sessions s ON s.id = r.session_id"
                       " WHERE r.resident_id = ? AND s.resident_id = r.resident_id AND r.status = 'valid'"
                       " AND s.started_at >= ? ORDER BY r.effective_time, r.id",
                       (resident_id, utc_iso(day_start(today, tz))))
    labs = store.query("SELECT r.id, r.code, r.value, r.unit, r.device_id, r.transport, r.effective_time,"
                       " NULL AS arm, r.meta FROM readings r WHERE r.resident_id = ? AND r.session_id IS NULL"
                       " AND r.status = 'valid' AND r.transport IN (%s) AND r.code IN (%s) AND r.effective_time >= ?"
                       " AND r.effective_time < ?"
                       " ORDER BY r.effective_time, r.id" % (",".join("?" * len(LAB_TRANSPORTS)),
                                                             ",".join("?" * len(LAB_CODES))),
                       (resident_id, *LAB_TRANSPORTS, *LAB_CODES,
                        utc_iso(day_start(today - timedelta(days=LAB_DAYS), tz)),
                        utc_iso(day_start(today + timedelta(days=1), tz))))
    rows = sorted(rows + _assigned(store, resident_id, today, tz), key=lambda r: (r["effective_time"], r["id"]))
    for r in labs + rows:                         # labs first, then oldest first: the latest one wins
        name = BP_FIELDS.get((r["code"], r["arm"])) or OTHER_FIELDS.get(r["code"])
        if name is None:
            if r["code"] in ("8480-6", "8462-4"):
                unplaced.append(r)
            continue
        values[name], sources[name], used[name] = shown(name, r["value"], r["code"]), r["id"], r
        if name == "ecg":
            _ecg_detail(values, r)
    meds = carry.proposed(store, resident_id)
    if meds:
        values[carry.TABLE.name] = meds
    computed = []
    if values.get("height") and values.get("weight") and "bmi" not in values:
        values["bmi"] = round(values["weight"] / (values["height"] / 100) ** 2, 1)
        computed.append("bmi")
    return Prefill(values, sources, used, age_on(birth, today), computed, unplaced)


def _assigned(store, resident_id: str, today: date, tz: str) -> list[dict]:
    """The check day's readings a doctor assigned to the resident from the inbox (no session, so no arm:
    a BP among them is offered, not placed). Analysers' results are among the labs already."""
    return store.query("SELECT r.id, r.code, r.value, r.unit, r.device_id, r.transport, r.effective_time,"
                       " NULL AS arm FROM readings r WHERE r.resident_id = ? AND r.session_id IS NULL"
                       " AND r.assigned_at IS NOT NULL AND r.status = 'valid' AND r.transport NOT IN (%s)"
                       " AND r.effective_time >= ? AND r.effective_time < ?" % ",".join("?" * len(LAB_TRANSPORTS)),
                       (resident_id, *LAB_TRANSPORTS, utc_iso(day_start(today, tz)),
                        utc_iso(day_start(today + timedelta(days=1), tz))))


def _ecg_detail(values: dict, reading: dict) -> None:
    """The ECG machine's conclusion as 心电图异常 when it is abnormal (the form asks for it then)."""
    values.pop("ecg_detail", None)
    conclusion = json.loads(reading.get("meta") or "{}").get("ecg_conclusion")
    if values.get("ecg") == "2" and conclusion:
        values["ecg_detail"] = conclusion[:BY_NAME["ecg_detail"].max_length or 500]
