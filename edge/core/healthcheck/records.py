"""Saving health checks as versions, in one transaction with their outbox and audit entries.

A save creates version 1; a correction adds version n+1 (with a reason); nothing is overwritten
in health_check_versions. Every save writes the record to the outbox as kind 'health_check'
(the hub accepts any well-formed kind, sync/hub/service.py). A field's source is kept only if the
reading is this resident's, valid, of the field's code (and for BP of the field's arm) and the
value on the form is still the device's value; a doctor's edit makes the field typed. The tables of
rows (rows.TABLES) are also written to health_check_rows, and a record reads them from there.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import audit, outbox
from ..codes import BUN_MG_DL_PER_MMOL_UREA
from ..errors import NotFound, ValidationError
from ..reading import utc_iso
from . import rows
from .fields import BY_NAME, GRADE_CODES

KIND = "health_check"
# the columns of health_check_rows that hold a row's cells (edge/core/schema_healthcheck.py, 611)
ROW_COLUMNS = ("start_date", "end_date", "reason", "facility", "record_no", "name", "usage", "dose", "duration",
               "compliance", rows.LEGACY)
# field -> (LOINC code of the reading, arm the measuring session was tagged with, or None)
DEVICE_FIELDS: dict[str, tuple[str, str | None]] = {
    "bp_left_sbp": ("8480-6", "left"), "bp_left_dbp": ("8462-4", "left"),
    "bp_right_sbp": ("8480-6", "right"), "bp_right_dbp": ("8462-4", "right"),
    "pulse": ("8867-4", None), "temperature": ("8310-5", None), "respiration": ("9279-1", None),
    "height": ("8302-2", None), "weight": ("29463-7", None), "waist": ("8280-0", None),
    "bmi": ("39156-5", None), "fbg": ("2339-0", None), "hba1c": ("4548-4", None),
    "urine_protein": ("20454-5", None), "urine_glucose": ("25428-4", None), "urine_ketone": ("2514-8", None),
    "urine_blood": ("5794-3", None), "ecg": ("8601-7", None),
    # 辅助检查 from the township's analysers (ASTM, HL7 ORU), LOINC codes in docs/health-check.md
    "hb": ("718-7", None), "wbc": ("6690-2", None), "plt": ("777-3", None),
    "alt": ("1742-6", None), "ast": ("1920-8", None), "albumin": ("1751-7", None),
    "tbil": ("1975-2", None), "dbil": ("1968-7", None),
    "creatinine": ("2160-0", None), "urea": ("22664-7", None), "potassium": ("2823-3", None),
    "sodium": ("2951-2", None),
    "tc": ("2093-3", None), "tg": ("2571-8", None), "ldl": ("13457-7", None), "hdl": ("2085-9", None),
}
# more codes that fill a field: fasting glucose measured on serum/plasma, LDL-C measured directly,
# urea nitrogen (BUN) for 血尿素
ALSO_CODES: dict[str, tuple[str, ...]] = {"fbg": ("1558-6",), "ldl": ("2089-1",), "urea": ("3094-0",)}
# a code whose reading is in another quantity than the field: reading -> the field's value.
# BUN mg/dL -> urea mmol/L (× 0.357, docs/health-check.md "BUN"); the reading keeps what the analyser sent.
CONVERTED: dict[str, Any] = {"3094-0": lambda v: v / BUN_MG_DL_PER_MMOL_UREA}


def field_codes(name: str) -> tuple[str, ...]:
    """Every LOINC code whose reading may fill the field."""
    return (DEVICE_FIELDS[name][0], *ALSO_CODES.get(name, ()))

CODED_READINGS = {"ecg"}          # a reading whose value is the form's code itself (1 normal, 2 abnormal)
# What the 老年人健康管理 service checks every year (docs/health-check.md, "complete"): a 健康体检表
# with these filled counts as complete for the KPI's share of complete records.
COMPLETE_FIELDS = ("check_date", "temperature", "pulse", "respiration", "height", "weight", "waist", "bmi",
                   "selfcare_self", "health_self", "cognition", "mood", "exercise_freq", "smoking_status",
                   "drinking_freq", "lips", "hearing", "motor", "skin", "lymph_nodes", "breath_sounds",
                   "heart_rhythm", "abdomen_tenderness", "hb", "wbc", "plt", "urine_protein", "urine_glucose",
                   "fbg", "ecg", "alt", "ast", "tbil", "creatinine", "urea", "tc", "tg", "ldl", "hdl",
                   "us_abdomen", "evaluation")


@dataclass(frozen=True)
class Saved:
    id: str
    version: int
    complete: bool
    sources: dict[str, str]


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def is_complete(values: dict[str, Any]) -> bool:
    """Every item of the yearly check recorded, and BP on at least one arm."""
    bp = any(values.get(f"bp_{arm}_sbp") is not None and values.get(f"bp_{arm}_dbp") is not None
             for arm in ("left", "right"))
    return bp and all(values.get(name) not in (None, "", []) for name in COMPLETE_FIELDS)


def shown(name: str, reading: float, code: str | None = None) -> Any:
    """A reading's value as the form shows it (a urine grade as its code, BUN as urea)."""
    f = BY_NAME[name]
    if code in CONVERTED:
        reading = CONVERTED[code](float(reading))
    if name in CODED_READINGS:
        return str(int(reading)) if float(reading) in (1.0, 2.0) else None
    if f.kind == "code":
        return GRADE_CODES.get(float(reading))
    return int(round(reading)) if f.kind == "int" else round(reading, f.decimals)


def _same(reading: float, value: Any, name: str, code: str) -> bool:
    v = shown(name, reading, code)
    return v is not None and (v == value if isinstance(v, str) else float(v) == float(value))


def verified_sources(conn, resident_id: str, values: dict, sources: dict[str, Any]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, reading_id in (sources or {}).items():
        if name not in DEVICE_FIELDS or values.get(name) is None or not isinstance(reading_id, str):
            continue
        arm, codes = DEVICE_FIELDS[name][1], field_codes(name)
        row = conn.execute("SELECT r.value, s.arm, r.code FROM readings r LEFT JOIN measuring_sessions s"
                           " ON s.id = r.session_id WHERE r.id = ? AND r.resident_id = ? AND r.status = 'valid'"
                           f" AND r.code IN ({','.join('?' * len(codes))})",
                           (reading_id, resident_id, *codes)).fetchone()
        if row is None or (arm is not None and row[1] != arm) or not _same(float(row[0]), values[name], name, row[2]):
            continue
        kept[name] = reading_id
    return kept


def save(store, *, resident_id: str, values: dict[str, Any], actor: str, at: datetime,
         sources: dict[str, str] | None = None, check_id: str | None = None,
         reason: str | None = None) -> Saved:
    """Store validated `values` as a new health check, or as a correction of `check_id`."""
    if not values.get("check_date"):
        raise ValidationError("check_date is required (validate the form first)", "check_date")
    if check_id and not (reason or "").strip():
        raise ValidationError("a correction needs a reason", "reason")
    for table in rows.TABLES:                 # a proposed row nobody confirmed is never saved (rows.read)
        if any(rows.PROPOSED in r for r in rows.shown_rows(values, table)):
            raise ValidationError(f"{table.name} holds a proposed row the doctor did not confirm", table.name)
    complete = is_complete(values)
    with store.atomic() as conn:
        prev = conn.execute("SELECT * FROM health_checks WHERE id = ?", (check_id,)).fetchone() if check_id else None
        if check_id and prev is None:
            raise NotFound(f"health check {check_id} does not exist")
        if prev and prev["resident_id"] != resident_id:
            raise ValidationError("a correction keeps the resident", "resident_id")
        cid = check_id or "hc-" + uuid.uuid4().hex
        version = prev["version"] + 1 if prev else 1
        src = verified_sources(conn, resident_id, values, sources or {})
        row = {"id": cid, "resident_id": resident_id, "version": version, "check_date": values["check_date"],
               "year": int(values["check_date"][:4]), "selfcare_total": values.get("selfcare_total"),
               "selfcare_band": values.get("selfcare_self"), "complete": int(complete), "author": actor,
               "updated_at": utc_iso(at)}
        if prev is None:
            row["created_at"] = utc_iso(at)
            conn.execute(f"INSERT INTO health_checks ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})",
                         row)
        else:
            conn.execute(f"UPDATE health_checks SET {', '.join(f'{k} = :{k}' for k in row if k != 'id')}"
                         " WHERE id = :id", row)
        conn.execute("INSERT INTO health_check_versions (check_id, version, data, sources, author, saved_at, reason)"
                     " VALUES (?,?,?,?,?,?,?)", (cid, version, _json(values), _json(src), actor, utc_iso(at), reason))
        for name, reading_id in src.items():
            conn.execute("INSERT INTO health_check_readings VALUES (?,?,?,?)", (cid, version, name, reading_id))
        _save_rows(conn, cid, version, values)
        outbox.add(conn, kind=KIND, record_id=cid, version=version, at=at,
                   payload={"id": cid, "version": version, "resident_id": resident_id, "values": values,
                            "sources": src, "complete": complete, "author": actor, "saved_at": utc_iso(at),
                            "reason": reason})
        audit.append(conn, actor=actor, action="health_check.correct" if prev else "health_check.create",
                     entity="health_check", entity_id=cid, at=at,
                     before={"version": prev["version"]} if prev else None,
                     after={"version": version, "values": values, "reason": reason})
    return Saved(cid, version, complete, src)


def _save_rows(conn, cid: str, version: int, values: dict[str, Any]) -> None:
    """The version's tables of rows (rows.TABLES), one health_check_rows row each (migration 611)."""
    for table in rows.TABLES:
        for n, row in enumerate(rows.shown_rows(values, table), 1):
            cells = {k: row.get(k) for k in ROW_COLUMNS if row.get(k) not in (None, "")}
            cols = ("check_id", "version", "field", "n", *cells)
            conn.execute(f"INSERT INTO health_check_rows ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                         (cid, version, table.name, n, *cells.values()))


def saved_rows(store, check_id: str, version: int) -> dict[str, list[dict]]:
    """table -> its rows as saved, in order; a row kept from the free-text field holds only `text`."""
    out: dict[str, list[dict]] = {t.name: [] for t in rows.TABLES}
    for r in store.query("SELECT * FROM health_check_rows WHERE check_id = ? AND version = ? ORDER BY field, n",
                         (check_id, version)):
        out[r["field"]].append({k: r[k] for k in ROW_COLUMNS if r[k] is not None})
    return out


def get(store, check_id: str, version: int | None = None) -> dict | None:
    row = store.one("SELECT * FROM health_checks WHERE id = ?", (check_id,))
    if row is None:
        return None
    v = store.one("SELECT * FROM health_check_versions WHERE check_id = ? AND version = ?",
                  (check_id, version or row["version"]))
    if v is None:
        return None
    values = {**json.loads(v["data"]), **saved_rows(store, check_id, v["version"])}
    return {**row, "shown_version": v["version"], "values": values,
            "sources": json.loads(v["sources"]), "saved_by": v["author"], "saved_at": v["saved_at"],
            "reason": v["reason"]}


def readings_used(store, check_id: str, version: int) -> dict[str, dict]:
    """field -> the reading its value came from, with its device and time."""
    return {r.pop("field"): r for r in store.query(
        "SELECT u.field, r.id, r.code, r.device_id, r.transport, r.value, r.unit, r.effective_time"
        " FROM health_check_readings u JOIN readings r ON r.id = u.reading_id"
        " WHERE u.check_id = ? AND u.version = ?", (check_id, version))}


def for_resident(store, resident_id: str) -> list[dict]:
    return store.query("SELECT id, version, check_date, selfcare_total, selfcare_band, complete FROM health_checks"
                       " WHERE resident_id = ? AND voided_at IS NULL ORDER BY check_date DESC", (resident_id,))
