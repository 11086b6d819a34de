"""E1394 results -> Readings, through the analyser's code map from config.

A message (one E1381 message: often the whole H..L transmission, sometimes one record per
message) is read with the context of what came before it in the same transmission: the header's
delimiters and sender, the current patient (P) and order (O). Each R record becomes one Reading:
code from the map (e.g. HbA1c -> LOINC 4548-4; an unmapped test keeps its raw test id so ingest
stores it as 'unmapped'), value, unit, completion time (R.13) as device time, and in `meta` the
patient id (matched to a resident by ID number or health-record number at ingest), sample id,
abnormal flag, reference range and result status.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Any, Mapping

from edge.core.reading import Reading, finite_number, storable_time

from .codec import AstmFrameError
from .records import DEFAULT_DELIMITERS, Delimiters, Record, parse_records

NUMBER = re.compile(r"[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d{1,3})?")
TIMESTAMP = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})?(\d{2})?(\d{2})?")
PROCESSING_QC = "Q"


@dataclass(frozen=True)
class CodeEntry:
    code: str                   # LOINC (or any code edge.core.codes knows)
    unit: str | None = None     # replaces the unit the analyser sends, when given


@dataclass(frozen=True)
class Context:
    """What the earlier records of this transmission said."""
    delimiters: Delimiters = DEFAULT_DELIMITERS
    sender: str = ""
    header_time: str = ""
    processing: str = ""
    patient_id: str = ""
    patient_seq: str = ""
    sample_id: str = ""
    order_action: str = ""
    seen_header: bool = False


def code_map(table: Mapping[str, Any] | None) -> dict[str, CodeEntry]:
    """The `[drivers.astm.codes]` table: TEST = "LOINC" or TEST = {code = "LOINC", unit = "UCUM"}."""
    out = {}
    for test, entry in (table or {}).items():
        if isinstance(entry, str) and entry:
            out[test] = CodeEntry(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("code"), str) and entry["code"]:
            unit = entry.get("unit")
            out[test] = CodeEntry(entry["code"], unit if isinstance(unit, str) and unit else None)
        else:
            raise ValueError(f"codes.{test} must be a code like \"4548-4\" or {{ code = \"4548-4\", unit = \"%\" }}")
    return out


def readings_from_message(text: bytes, context: Context, *, device_id: str,
                          codes: Mapping[str, CodeEntry], tz: tzinfo) -> tuple[list[Reading], Context]:
    """Readings for the R records of one message, and the context after it. Raises AstmFrameError."""
    records, delims = parse_records(text, context.delimiters)
    ctx = replace(context, delimiters=delims)
    readings = []
    for rec in records:
        ctx = _advance(ctx, rec)
        if rec.type == "R":
            readings.append(_reading(rec, ctx, device_id, codes, tz))
    return readings, ctx


def _advance(ctx: Context, rec: Record) -> Context:
    if rec.type == "H":
        return Context(delimiters=rec.delimiters, sender=rec.field(5), header_time=rec.field(14),
                       processing=rec.components(12)[0], seen_header=True)
    if rec.type == "P":
        ids = [rec.components(n)[0].strip() for n in (3, 4, 5)]
        return replace(ctx, patient_id=next((i for i in ids if i), ""), patient_seq=rec.field(2),
                       sample_id="", order_action="")
    if rec.type == "O":
        sample = rec.components(3)[0].strip() or rec.components(4)[0].strip()
        return replace(ctx, sample_id=sample, order_action=rec.field(12).strip())
    if rec.type == "L":
        return replace(ctx, patient_id="", patient_seq="", sample_id="", order_action="")
    return ctx


def result_test_code(rec: Record) -> str:
    """The analyser's test code: the 4th component of the universal test id (`^^^HbA1c`)."""
    parts = [p.strip() for p in rec.components(3)]
    code = parts[3] if len(parts) > 3 and parts[3] else next((p for p in parts if p), "")
    if not code:
        raise AstmFrameError(f"result record {rec.field(2) or '?'} has no test id (R.3)")
    return code


def _reading(rec: Record, ctx: Context, device_id: str, codes: Mapping[str, CodeEntry], tz: tzinfo) -> Reading:
    test = result_test_code(rec)
    entry = codes.get(test) or _casefold_get(codes, test)
    sent_value, sent_unit = rec.field(4).strip(), rec.components(5)[0].strip()
    value, why = _number(sent_value)
    completed = rec.field(13).strip() or ctx.header_time
    meta = {k: v for k, v in {
        "patient_id": ctx.patient_id, "sample_id": ctx.sample_id, "test": test,
        "abnormal_flag": rec.field(7).strip(), "reference_range": rec.field(6).strip(),
        "result_status": rec.field(9).strip(), "completed": rec.field(13).strip(),
        "analyser": ctx.sender, "value_as_text": sent_value if value is None else "",
        "qc": True if (ctx.processing == PROCESSING_QC or ctx.order_action == "Q") else None,
    }.items() if v}
    key = json.dumps(["astm", ctx.sample_id, ctx.patient_id, test, rec.field(2), completed, sent_value],
                     separators=(",", ":"))
    return Reading(device_id=device_id, code=entry.code if entry else rec.field(3).strip(), value=value,
                   unit=(entry.unit if entry and entry.unit else sent_unit), transport="astm",
                   device_time=parse_time(completed, tz), raw=rec.text, source_key=key,
                   no_value_reason=why, meta=meta)


def _casefold_get(codes: Mapping[str, CodeEntry], test: str) -> CodeEntry | None:
    low = test.casefold()
    return next((e for k, e in codes.items() if k.casefold() == low), None)


def _number(text: str) -> tuple[float | None, str | None]:
    if not text:
        return None, "the analyser sent no value"
    if not NUMBER.fullmatch(text):
        return None, f"the analyser sent {text[:40]!r}, not a number"
    number = finite_number(float(text.replace(",", ".")))   # "1e999" is inf: never a value
    if number is None:
        return None, f"the analyser sent {text[:40]!r}, beyond any possible value"
    return number, None


def parse_time(text: str, tz: tzinfo) -> datetime | None:
    """YYYYMMDD[HH[MM[SS]]] in the analyser's (the clinic's) local time; None when absent or invalid
    (including a time that leaves years 1-9999 once in UTC, e.g. 00010101 in UTC+8)."""
    m = TIMESTAMP.fullmatch(text.strip()[:14]) if text else None
    if not m:
        return None
    try:
        parts = [int(g) if g else 0 for g in m.groups()]
        when = datetime(*parts, tzinfo=tz)
    except ValueError:
        return None
    return when if storable_time(when) else None
