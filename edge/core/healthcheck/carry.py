"""The 主要用药情况 rows a new health check proposes from what the box already knows ("只录一次"):
the drugs of the resident's latest hypertension and diabetes follow-ups and the medication rows of
the resident's last health check (docs/health-check.md, "Medications proposed").

Each proposed row says where it came from (`rows.PROPOSED`: "followup:<visit date>" or
"check:<check date>") and is not a row of the record until the doctor confirms it: `rows.read`
leaves every row still marked proposed out, so a list nobody looked at is never saved. Sources are
taken newest first and a drug is proposed once, by its name (spaces, width and case ignored).

The 填表说明 asks for 用法 as the route (口服, 皮下注射) and 用量 as frequency and dose (每日三次，
每次5mg). A follow-up drug (edge.core.followup.validation: name, times a day, mg per dose) gives 用量
"每日N次 每次Nmg" (a space: the web app reads what is posted as NFKC, edge/web/typed.py, so a
，would come back as ,), the paper form's words whatever the page's language; it records no route, so
用法 is left for the doctor. The DM form's insulin (胰岛素种类, 胰岛素用法和用量) becomes a row with
that text as 用法. The follow-up's 服药依从性 fills the adherence of its drugs when it was
recorded. A last check's row keeps its name, 用法 and 用量; its 用药时间 (the time taken within that
check's year) and 服药依从性 are left for the doctor. Nothing is cut to fit: a carried text longer
than its column gets the column's message when the doctor confirms the row. Hospital stays, home
beds and vaccinations are never carried (docs/health-check.md says why).
"""
from __future__ import annotations

import unicodedata
from typing import Any

from ..followup import records as followups
from ..followup.fields import FORMS
from . import records, rows

TABLE = rows.BY_TABLE["medications"]
FOLLOWUP, CHECK = "followup", "check"


def source(kind: str, day: str) -> str:
    """The value a proposed row carries: where it came from and that record's date."""
    return f"{kind}:{day}"


def source_of(value: Any) -> tuple[str, str]:
    """(kind, date) of a proposed row's source; ("", "") for anything else."""
    kind, _, day = str(value or "").partition(":")
    return (kind, day) if kind in (FOLLOWUP, CHECK) else ("", "")


def drug_key(name: Any) -> str:
    """A drug's name as compared: "氨氯地平片 " is 氨氯地平片, ＡＭＬＯＤＩＰＩＮＥ is amlodipine."""
    return "".join(unicodedata.normalize("NFKC", str(name or "")).split()).casefold()


def _dose(times: Any, mg: Any) -> str | None:
    """A follow-up drug's times a day and mg per dose as the 健康体检表's 用量 (每日2次 每次25mg)."""
    parts = [f"每日{times:g}次" if isinstance(times, (int, float)) else "",
             f"每次{mg:g}mg" if isinstance(mg, (int, float)) else ""]
    return " ".join(p for p in parts if p) or None


def _followup_rows(visit: dict) -> list[dict]:
    v = visit["values"]
    adherence = v.get("med_adherence") if v.get("med_adherence") in {c for c, _, _ in TABLE.column(
        "compliance").choices} else None
    out = []
    for m in v.get("medications") or []:
        if not isinstance(m, dict) or not str(m.get("name") or "").strip():
            continue
        times, dose = m.get("times_per_day"), m.get("dose_mg")
        out.append({"name": str(m["name"]).strip(), "dose": _dose(times, dose), "compliance": adherence})
    if str(v.get("insulin_type") or "").strip():
        out.append({"name": str(v["insulin_type"]).strip(), "usage": str(v.get("insulin_usage") or "").strip(),
                    "compliance": adherence})
    src = source(FOLLOWUP, visit["visit_date"])
    return [{**r, rows.PROPOSED: src} for r in out]


def _check_rows(store, check: dict) -> list[dict]:
    src = source(CHECK, check["check_date"])
    out = []
    for r in records.saved_rows(store, check["id"], check["version"])[TABLE.name]:
        if str(r.get("name") or "").strip():          # a free text kept from before the rows has no name
            out.append({"name": r["name"], "usage": r.get("usage"), "dose": r.get("dose"), rows.PROPOSED: src})
    return out


def proposed(store, resident_id: str) -> list[dict]:
    """The medication rows a new check of the resident proposes, newest source first, one per drug."""
    sources: list[tuple[str, list[dict]]] = []
    for form in FORMS:
        visit = followups.last_visit(store, resident_id, form)
        if visit:
            sources.append((visit["visit_date"], _followup_rows(visit)))
    checks = records.for_resident(store, resident_id)        # newest first, voided ones left out
    if checks:
        sources.append((checks[0]["check_date"], _check_rows(store, checks[0])))
    out: list[dict] = []
    seen: set[str] = set()
    for _day, found in sorted(sources, key=lambda s: s[0], reverse=True):
        for r in found:
            key = drug_key(r["name"])
            if key and key not in seen and len(out) < TABLE.max_rows:
                seen.add(key)
                out.append({k: v for k, v in r.items() if v not in (None, "")})
    return out
