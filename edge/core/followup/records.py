"""Saving follow-ups as versions, in one transaction with their outbox and audit entries.

A save creates version 1; a correction adds version n+1 (with a reason) and moves the current
row to it; nothing is overwritten in followup_versions. Every save writes the form to the outbox
(kind 'followup', with its version); a save that raises an urgent referral also writes a
'referral_alert' at outbox.PRIORITY_URGENT so the county gets it ahead of bulk history.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .. import audit, measuring, outbox
from .. import management as management_record
from ..errors import NotFound, ValidationError
from ..reading import utc_iso
from .fields import BY_NAME, FORMS, STEP_URGENT
from .measurements import MAX_AVERAGED, mean_matches
from . import standing
from .rules import urgent_alerts

DISEASES = FORMS   # a form per managed disease: 'hypertension', 'diabetes'
# Form fields a device reading can supply, with the LOINC code it comes from.
DEVICE_FIELDS = {"sbp": "8480-6", "dbp": "8462-4", "heart_rate": "8867-4", "weight": "29463-7",
                 "height": "8302-2", "fbg": "2339-0", "hba1c": "4548-4"}


@dataclass(frozen=True)
class Saved:
    id: str
    version: int
    urgent: bool
    alerts: list[dict]


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def enrol(store, *, resident_id: str, disease: str, since: date, actor: str, at: datetime) -> None:
    """Start managing a resident for a disease (纳入管理); see edge.core.management (the record)."""
    management_record.enrol(store, resident_id=resident_id, disease=disease, since=since, actor=actor, at=at)


def _verified_sources(conn, resident_id: str, values: dict, sources: dict[str, Any],
                      session_id: int | None) -> dict[str, Any]:
    """Keep a field's reading id(s) only if every reading is this resident's, valid, of the field's
    code, taken in this visit's session (when the form came from one), and the value on the form is
    still the device's value, or the mean of two or three (a doctor's edit makes the field typed)."""
    kept: dict[str, Any] = {}
    for name, ids in (sources or {}).items():
        ids = [ids] if isinstance(ids, str) else list(ids or ())
        if name not in DEVICE_FIELDS or values.get(name) is None or not 1 <= len(ids) <= MAX_AVERAGED:
            continue
        found = []
        for reading_id in dict.fromkeys(ids):
            row = conn.execute("SELECT value, session_id FROM readings WHERE id = ? AND resident_id = ?"
                               " AND status = 'valid' AND code = ?",
                               (reading_id, resident_id, DEVICE_FIELDS[name])).fetchone()
            if row is None or (session_id is not None and row[1] != session_id):
                break
            found.append(float(row[0]))
        else:
            if mean_matches(found, float(values[name]), whole=BY_NAME[name].kind == "int"):
                kept[name] = ids[0] if len(ids) == 1 else ids
    return kept


def _session_of(conn, resident_id: str, session_id: int | None) -> int | None:
    if session_id is None:
        return None
    row = conn.execute("SELECT resident_id FROM measuring_sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None or row[0] != resident_id:
        raise ValidationError("the measuring session is another resident's", "session_id")
    return int(session_id)


def save(store, *, resident_id: str, form: str, values: dict[str, Any], actor: str, at: datetime,
         sources: dict[str, str] | None = None, suggestions: dict[str, Any] | None = None,
         followup_id: str | None = None, reason: str | None = None, session_id: int | None = None) -> Saved:
    """Store validated `values` as a new follow-up, or as a correction of `followup_id`.
    `session_id`: the visit's measuring session the form was filled from; saving a new follow-up
    ends it (later readings go to the inbox, never onto this visit)."""
    if form not in FORMS:
        raise ValidationError(f"form must be one of {', '.join(FORMS)}", "form")
    for name in ("visit_date", "visit_mode"):
        if not values.get(name):
            raise ValidationError(f"{name} is required (validate the form first)", name)
    if followup_id and not (reason or "").strip():
        raise ValidationError("a correction needs a reason", "reason")
    alerts = [{"code": a.code, "zh": a.zh, "en": a.en} for a in urgent_alerts(form, values)]
    urgent = bool(alerts) or values.get("next_step") == STEP_URGENT
    with store.atomic() as conn:
        prev = _current(conn, followup_id) if followup_id else None
        if followup_id and prev is None:
            raise NotFound(f"follow-up {followup_id} does not exist")
        if prev and (prev["resident_id"], prev["form"]) != (resident_id, form):
            raise ValidationError("a correction keeps the resident and the form", "form")
        fid = followup_id or "f-" + uuid.uuid4().hex
        version = prev["version"] + 1 if prev else 1
        session_id = _session_of(conn, resident_id, prev["session_id"] if prev else session_id)
        src = _verified_sources(conn, resident_id, values, sources or {}, session_id)
        _write_current(conn, fid, resident_id, form, version, values, urgent, src, actor, at, prev is None,
                       session_id)
        _write_used(conn, fid, version, src)
        if session_id is not None and prev is None:
            measuring.end_on_save(conn, session_id, fid, now=at, actor=actor)
        standing.refresh(conn, resident_id, form)
        conn.execute("INSERT INTO followup_versions (followup_id, version, data, sources, suggestions, alerts,"
                     " author, saved_at, reason) VALUES (?,?,?,?,?,?,?,?,?)",
                     (fid, version, _json(values), _json(src), _json(suggestions or {}), _json(alerts),
                      actor, utc_iso(at), reason))
        payload = {"id": fid, "version": version, "resident_id": resident_id, "form": form, "values": values,
                   "sources": src, "alerts": alerts, "author": actor, "saved_at": utc_iso(at), "reason": reason}
        outbox.add(conn, kind="followup", record_id=fid, version=version, payload=payload, at=at)
        prev_alerts = json.loads(prev["alerts"]) if prev else []
        if urgent and (not prev or not prev["urgent"] or prev_alerts != alerts):
            outbox.add(conn, kind="referral_alert", record_id=fid, version=version, at=at,
                       priority=outbox.PRIORITY_URGENT,
                       payload={"followup_id": fid, "resident_id": resident_id, "form": form,
                                "visit_date": values.get("visit_date"), "alerts": alerts,
                                "referral_facility": values.get("referral_facility")})
        audit.append(conn, actor=actor, action="followup.correct" if prev else "followup.create",
                     entity="followup", entity_id=fid, at=at,
                     before={"version": prev["version"], "values": json.loads(prev["data"])} if prev else None,
                     after={"version": version, "values": values, "reason": reason})
    return Saved(fid, version, urgent, alerts)


def _write_used(conn, fid: str, version: int, src: dict[str, Any]) -> None:
    for name, ids in src.items():
        for reading_id in dict.fromkeys([ids] if isinstance(ids, str) else ids):
            conn.execute("INSERT INTO followup_readings (followup_id, version, field, reading_id) VALUES (?,?,?,?)",
                         (fid, version, name, reading_id))


def readings_used(store, followup_id: str, version: int) -> dict[str, list[dict]]:
    """field -> the readings its value came from (two or three: their mean), with device and time."""
    out: dict[str, list[dict]] = {}
    for r in store.query("SELECT u.field, r.id, r.device_id, r.value, r.unit, r.effective_time"
                         " FROM followup_readings u JOIN readings r ON r.id = u.reading_id"
                         " WHERE u.followup_id = ? AND u.version = ? ORDER BY u.field, r.effective_time",
                         (followup_id, version)):
        out.setdefault(r.pop("field"), []).append(r)
    return out


def _write_current(conn, fid, resident_id, form, version, v, urgent, src, actor, at, new: bool,
                   session_id: int | None) -> None:
    bp_source = None
    if v.get("sbp") is not None:
        bp_source = "device" if ("sbp" in src and "dbp" in src) else "typed"
    row = {"id": fid, "resident_id": resident_id, "form": form, "version": version,
           "visit_date": v["visit_date"], "visit_mode": v["visit_mode"], "sbp": v.get("sbp"),
           "dbp": v.get("dbp"), "fbg": v.get("fbg"), "classification": v.get("classification"),
           "next_step": v.get("next_step"), "next_visit_date": v.get("next_visit_date"),
           "urgent": int(urgent), "bp_source": bp_source, "author": actor, "updated_at": utc_iso(at),
           "session_id": session_id}
    if new:
        row["created_at"] = utc_iso(at)
        conn.execute(f"INSERT INTO followups ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
    else:
        sets = ", ".join(f"{k} = :{k}" for k in row if k != "id")
        conn.execute(f"UPDATE followups SET {sets} WHERE id = :id", row)


def _current(conn, fid: str) -> dict | None:
    row = conn.execute("SELECT f.*, v.data, v.alerts FROM followups f JOIN followup_versions v"
                       " ON v.followup_id = f.id AND v.version = f.version WHERE f.id = ?", (fid,)).fetchone()
    return dict(row) if row else None


def void(store, followup_id: str, *, reason: str, actor: str, at: datetime) -> None:
    if not reason.strip():
        raise ValidationError("voiding needs a reason", "reason")
    with store.atomic() as conn:
        prev = _current(conn, followup_id)
        if prev is None:
            raise NotFound(f"follow-up {followup_id} does not exist")
        conn.execute("UPDATE followups SET voided_at = ?, void_reason = ? WHERE id = ?",
                     (utc_iso(at), reason, followup_id))
        standing.refresh(conn, prev["resident_id"], prev["form"])
        outbox.add(conn, kind="followup_void", record_id=followup_id, version=prev["version"], at=at,
                   payload={"id": followup_id, "reason": reason})
        audit.append(conn, actor=actor, action="followup.void", entity="followup", entity_id=followup_id,
                     at=at, before={"version": prev["version"]}, after={"voided": True, "reason": reason})


def get(store, followup_id: str, version: int | None = None) -> dict | None:
    """The follow-up (its current version, or `version`) with its values decoded."""
    row = store.one("SELECT * FROM followups WHERE id = ?", (followup_id,))
    if row is None:
        return None
    v = store.one("SELECT * FROM followup_versions WHERE followup_id = ? AND version = ?",
                  (followup_id, version or row["version"]))
    if v is None:
        return None
    for k in ("data", "sources", "suggestions", "alerts"):
        v[k] = json.loads(v[k])
    return {**row, "shown_version": v["version"], "values": v["data"], "sources": v["sources"],
            "suggestions": v["suggestions"], "alerts": v["alerts"], "saved_by": v["author"],
            "saved_at": v["saved_at"], "reason": v["reason"]}


def versions(store, followup_id: str) -> list[dict]:
    out = store.query("SELECT version, author, saved_at, reason, data FROM followup_versions"
                      " WHERE followup_id = ? ORDER BY version", (followup_id,))
    for r in out:
        r["values"] = json.loads(r.pop("data"))
    return out


def last_visit(store, resident_id: str, form: str, *, before: str | None = None,
               exclude: str | None = None) -> dict | None:
    """The resident's latest (not voided) follow-up on this form, optionally before a date."""
    sql = ("SELECT id FROM followups WHERE resident_id = ? AND form = ? AND voided_at IS NULL")
    params: list = [resident_id, form]
    if before:
        sql += " AND visit_date < ?"
        params.append(before)
    if exclude:
        sql += " AND id != ?"
        params.append(exclude)
    row = store.one(sql + " ORDER BY visit_date DESC, created_at DESC LIMIT 1", params)
    return get(store, row["id"]) if row else None


def management(store, resident_id: str) -> dict[str, str]:
    """disease -> since (ISO date) for the resident's active management."""
    return management_record.active(store, resident_id)
