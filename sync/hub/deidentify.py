"""The de-identified export for research and statistics (docs/county.md, "De-identified export").

One row per follow-up (the latest version of each, voided ones left out), built from an allow-list:
nothing a node sends reaches the file unless it is named below. Direct identifiers (name, ID
number, phone, address, health-record number, the node's resident id, the doctor's user name,
free text) never do; the ID number and the record number become keyed pseudonyms (HMAC-SHA256
under the county's de-identification key, a file outside the database); the clinic becomes its
township; the birth date becomes a 5-year age band on the visit day (85 and over together); the
visit date becomes its month.

Small cells are suppressed: the quasi-identifiers (township, sex, age band) of every row must be
shared by at least `min_cell` different people. Rows of a smaller group lose sex and age band
("*"); if the township's "*" group is still small they lose the township too; rows still in a
group smaller than `min_cell` are left out, and the file says how many.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edge.core import durable
from .county import NO_TOWNSHIP, all_places
from .storage import HubStore, records

SUPPRESSED = "*"
QUASI = ("township", "sex", "age_band")
MEASURES = ("visit_mode", "sbp", "dbp", "heart_rate", "weight", "bmi", "fbg", "hba1c", "classification")
COLUMNS = ("id_pseudonym", "record_pseudonym", *QUASI, "form", "visit_month", *MEASURES)
HEADER = ("身份证号假名 id_pseudonym", "档案号假名 record_pseudonym", "乡镇 township", "性别 sex",
          "年龄组 age_band", "随访表 form", "随访月份 visit_month", "随访方式 visit_mode", "收缩压 sbp",
          "舒张压 dbp", "心率 heart_rate", "体重 weight", "体质指数 bmi", "空腹血糖 fbg",
          "糖化血红蛋白 hba1c", "随访分类 classification")
SEX = {"1": "1", "2": "2"}          # GB/T 2261.1 male, female; anything else is not shown
TOP_BAND = 85


class DeidError(ValueError):
    """The export cannot be made safely (a missing or bad key); nothing was written."""


def load_or_create_key(path: Path) -> bytes:
    """The county's de-identification key: 32 random bytes in a file readable by its owner only.
    Made the first time; the same key gives the same pseudonyms in every later export."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        durable.create_file(path, secrets.token_hex(32) + "\n")
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 32:
        raise DeidError(f"{path} is not a de-identification key (64 hex digits); restore it from the "
                        "county's backup, or remove it to start new pseudonyms")
    return key


def pseudonym(key: bytes, kind: str, value: str | None) -> str:
    """HMAC-SHA256 of `kind` and `value` under the key, 32 hex digits; "" for no value."""
    if not value:
        return ""
    return hmac.new(key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]


def age_band(birth: str | None, on: str | None) -> str:
    try:
        b, d = date.fromisoformat(str(birth)), date.fromisoformat(str(on))
    except ValueError:
        return SUPPRESSED
    age = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    if age < 0:
        return SUPPRESSED
    if age >= TOP_BAND:
        return f"{TOP_BAND}+"
    low = age // 5 * 5
    return f"{low}-{low + 4}"


@dataclass
class Export:
    rows: list[dict[str, Any]] = field(default_factory=list)
    generalised: int = 0        # rows whose sex/age band (or township too) became "*"
    left_out: int = 0           # rows of a group still below min_cell
    min_cell: int = 5

    def body(self) -> list[list]:
        return [[r[c] for c in COLUMNS] for r in self.rows]

    def title(self) -> list[str]:
        return [f"去标识化随访数据 de-identified follow-ups; 最小单元 min cell {self.min_cell}; "
                f"泛化 generalised {self.generalised}; 删除 left out {self.left_out}"]


def _latest(store: HubStore, kind: str) -> dict[tuple[str, str], dict]:
    q = (sa.select(records.c.node, records.c.record_id, records.c.payload).where(records.c.kind == kind)
         .order_by(records.c.version))
    out = {}
    with store.engine.connect() as c:
        for node, rid, payload in c.execute(q):
            try:
                doc = json.loads(payload)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out[(node, rid)] = doc
    return out


def _row(key: bytes, town: str, resident: dict, f: dict) -> dict[str, Any]:
    values = f.get("values") if isinstance(f.get("values"), dict) else {}
    visit = str(values.get("visit_date") or "")
    row = {"id_pseudonym": pseudonym(key, "id_number", resident.get("id_number")),
           "record_pseudonym": pseudonym(key, "health_record_no", resident.get("health_record_no")),
           "township": town, "sex": SEX.get(str(resident.get("sex")), SUPPRESSED),
           "age_band": age_band(resident.get("birth_date"), visit),
           "form": f.get("form") if f.get("form") in ("hypertension", "diabetes") else SUPPRESSED,
           "visit_month": visit[:7] if len(visit) >= 7 else SUPPRESSED}
    for m in MEASURES:
        v = values.get(m)
        row[m] = v if isinstance(v, (int, float, str)) and not isinstance(v, bool) and len(str(v)) <= 8 else None
    return row


def build(store: HubStore, key: bytes, *, min_cell: int = 5) -> Export:
    if min_cell < 2:
        raise DeidError("the smallest cell must be at least 2 people")
    towns = {p.node: p.township for p in all_places(store).values()}
    residents = {k: r for k, r in _latest(store, "resident").items() if not r.get("voided_at")}
    voided = set(_latest(store, "followup_void"))
    rows, people = [], []
    for (node, fid), f in sorted(_latest(store, "followup").items()):
        resident = residents.get((node, str(f.get("resident_id"))))
        if (node, fid) in voided or resident is None:
            continue
        town = towns.get(node, NO_TOWNSHIP)
        rows.append(_row(key, SUPPRESSED if town == NO_TOWNSHIP else town, resident, f))
        # one person is one ID number, even registered at two clinics; without one, one clinic's resident
        people.append(pseudonym(key, "id_number", resident.get("id_number"))
                      or pseudonym(key, "person", f"{node}\0{f.get('resident_id')}"))
    return suppress(rows, people, min_cell)


def _groups(rows: list[dict], people: list[str]) -> dict[tuple, set[str]]:
    g: dict[tuple, set[str]] = defaultdict(set)
    for r, p in zip(rows, people):
        g[tuple(r[q] for q in QUASI)].add(p)
    return g


def suppress(rows: list[dict], people: list[str], min_cell: int) -> Export:
    """Generalise, then leave out, the rows of groups smaller than min_cell people."""
    out = Export(min_cell=min_cell)
    changed: set[int] = set()
    for blank in (("sex", "age_band"), ("township",)):
        small = {k for k, who in _groups(rows, people).items() if len(who) < min_cell}
        for i, r in enumerate(rows):
            if tuple(r[q] for q in QUASI) in small:
                changed.add(i)
                for b in blank:
                    r[b] = SUPPRESSED
    small = {k for k, who in _groups(rows, people).items() if len(who) < min_cell}
    for i, r in enumerate(rows):
        if tuple(r[q] for q in QUASI) in small:
            out.left_out += 1
            changed.discard(i)
        else:
            out.rows.append(r)
    out.generalised = len(changed)
    return out
