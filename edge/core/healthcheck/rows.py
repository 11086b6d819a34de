"""The 健康体检表's tables of rows: 住院史, 家庭病床史 (住院治疗情况), 主要用药情况 and
非免疫规划预防接种史, their columns and their server-side validation (docs/health-check.md, "Rows").

A row is posted as flat fields `<table>_<n>_<column>` (n from 1; numbers may have gaps where a row
was removed). A row with every cell blank is no row. Each cell is a follow-up `Field` read by the
follow-up reader (dates, code lists, lengths); this module adds what a row needs: its first column,
dates not after today, an end not before its start. The medication rows take 服药依从性 from the
follow-up forms' code list (edge.core.followup.fields.MED_ADHERENCE) and, like the follow-up's
drugs, need the drug's name. A row kept from before migration 611 holds only `text` (the free text
typed then) and is shown as it was; the form never posts one. A medication row the form proposed
from the box's records (healthcheck.carry) is posted with `<table>_<n>_proposed` until the doctor
confirms it; `read` leaves such a row out, so nothing unconfirmed is saved.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from ..followup.fields import MED_ADHERENCE, Field
from ..followup.validation import read_field
from .fields import FORM

MESSAGES = {
    "row_needs": ("请填写{col}", "give the {col}"),
    "row_future": ("{col}不能晚于今天", "the {col} cannot be after today"),
    "row_order": ("{end}不能早于{start}", "the {end} cannot be before the {start}"),
    "row_too_many": ("最多{max}行", "at most {max} rows"),
    "row_where": ("{table}第{n}行：{text}", "{table}, row {n}: {text}"),
}
LEGACY = "text"       # the one key of a row kept from the free-text field (migration 611)
PROPOSED = "proposed"  # a proposed, not yet confirmed row's source (healthcheck.carry); never saved


def message(key: str, lang: str = "zh", **kw: Any) -> str:
    zh, en = MESSAGES[key]
    return (zh if lang == "zh" else en).format(**kw)


@dataclass(frozen=True)
class Table:
    name: str                       # the form's field (fields.FIELDS, kind "rows")
    zh: str
    en: str
    columns: tuple[Field, ...]
    paper_rows: int                 # rows printed on the paper form
    required: str                   # the column a row cannot be without
    start: str | None = None        # a period's start and end columns (end >= start)
    end: str | None = None
    period: tuple[str, str] = ("", "")    # the paper form prints the period as one column: 入/出院日期
    max_rows: int = 10

    def label(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en

    def column(self, name: str) -> Field:
        return next(c for c in self.columns if c.name == name)


def _c(name: str, zh: str, en: str, kind: str = "text", max_length: int = 50, **kw) -> Field:
    return Field(name, zh, en, kind, forms=(FORM,), max_length=max_length, **kw)


_REASON = _c("reason", "原因", "reason", max_length=100)
_FACILITY = _c("facility", "医疗机构名称", "facility", max_length=70)
_RECORD_NO = _c("record_no", "病案号", "record number", max_length=30)

TABLES: tuple[Table, ...] = (
    Table("hospital_stays", "住院史", "Hospital stays",
          (_c("start_date", "入院日期", "admission date", "date"), _c("end_date", "出院日期", "discharge date", "date"),
           _REASON, _FACILITY, _RECORD_NO), 2, "start_date", "start_date", "end_date",
          ("入/出院日期", "admitted / discharged")),
    Table("home_beds", "家庭病床史", "Home-bed care",
          (_c("start_date", "建床日期", "date the bed was set up", "date"),
           _c("end_date", "撤床日期", "date the bed was closed", "date"), _REASON, _FACILITY, _RECORD_NO),
          2, "start_date", "start_date", "end_date", ("建/撤床日期", "bed set up / closed")),
    Table("medications", "主要用药情况", "Main medications",
          (_c("name", "药物名称", "drug"), _c("usage", "用法", "how taken"), _c("dose", "用量", "dose", max_length=30),
           _c("duration", "用药时间", "taken for", max_length=30),
           _c("compliance", "服药依从性", "adherence", "code", choices=MED_ADHERENCE)), 6, "name"),
    Table("vaccinations", "非免疫规划预防接种史", "Non-programme vaccinations",
          (_c("name", "名称", "vaccine"), _c("start_date", "接种日期", "date given", "date"),
           _c("facility", "接种机构", "given at", max_length=70)), 3, "name"),
)
BY_TABLE = {t.name: t for t in TABLES}
_CELL = re.compile(r"^(%s)_(\d{1,3})_([a-z_]+)$" % "|".join(t.name for t in TABLES))


def cell(table: str, n: int, column: str) -> str:
    """The posted name (and the error key) of one cell."""
    return f"{table}_{n}_{column}"


def posted(raw: Mapping[str, Any], table: Table) -> list[tuple[int, dict[str, str]]]:
    """The table's rows as posted, in row order: (n, column -> text), blank rows left out; a
    proposed row keeps its PROPOSED key."""
    found: dict[int, dict[str, str]] = {}
    names = {c.name for c in table.columns} | {PROPOSED}
    for key in raw:
        m = _CELL.match(key)
        if m and m.group(1) == table.name and m.group(3) in names:
            v = raw.get(key)
            found.setdefault(int(m.group(2)), {})[m.group(3)] = "" if v is None else str(v).strip()
    return [(n, cells) for n, cells in sorted(found.items())
            if any(v for k, v in cells.items() if k != PROPOSED)]


def read(raw: Mapping[str, Any], table: Table, *, today: date, lang: str) -> tuple[list[dict], dict[str, str]]:
    """The table's typed rows and a message per wrong cell (keyed by the cell's posted name). A row
    still proposed is not the doctor's: it is left out, unchecked (its number stays as shown)."""
    rows: list[dict] = []
    errors: dict[str, str] = {}
    given = posted(raw, table)
    for i, (n, cells) in enumerate(given):
        if PROPOSED in cells:
            continue
        def where(col: str, text: str) -> None:
            errors.setdefault(cell(table.name, n, col), message("row_where", lang, table=table.label(lang),
                                                                n=i + 1, text=text))
        if i >= table.max_rows:
            where(table.required, message("row_too_many", lang, max=table.max_rows))
            continue
        row: dict[str, Any] = {}
        for col in table.columns:
            value, err = read_field(FORM, col, cells, lang)
            row[col.name] = value
            if err:
                where(col.name, err)
            elif col.kind == "date" and value and date.fromisoformat(value) > today:
                where(col.name, message("row_future", lang, col=col.label(lang)))
        if row[table.required] in (None, "") and cell(table.name, n, table.required) not in errors:
            where(table.required, message("row_needs", lang, col=table.column(table.required).label(lang)))
        s, e = row.get(table.start or ""), row.get(table.end or "")
        if s and e and e < s and cell(table.name, n, table.end) not in errors:
            where(table.end, message("row_order", lang, end=table.column(table.end).label(lang),
                                     start=table.column(table.start).label(lang)))
        rows.append(row)
    return rows, errors


def shown_rows(values: Mapping[str, Any], table: Table) -> list[dict]:
    """The rows a saved record holds; a free text kept from before the rows (a string) is one row."""
    v = values.get(table.name)
    if isinstance(v, str):
        return [{LEGACY: v}] if v.strip() else []
    return [r for r in (v or []) if isinstance(r, dict)]


def form_rows(values: Mapping[str, Any], table: Table) -> list[tuple[int, dict[str, Any]]]:
    """The rows the form shows: posted ones (on a refused save, as typed), else saved ones, then
    one empty row to type in; numbered as posted so each message stays beside its cell."""
    rows = posted(values, table)
    if not rows:
        rows = [(n, r) for n, r in enumerate(shown_rows(values, table), 1) if LEGACY not in r]
    last = rows[-1][0] if rows else 0
    return rows + [(last + 1, {})] if len(rows) < table.max_rows else rows


def for_paper(values: Mapping[str, Any], table: Table) -> list[dict]:
    """The rows of a printout: the saved ones, then blank ones up to the paper form's count."""
    rows = shown_rows(values, table)
    return rows + [{}] * max(0, table.paper_rows - len(rows))


def paper_columns(table: Table) -> list[tuple[str, str, tuple[Field, ...]]]:
    """The printed form's columns: (Chinese heading, English heading, the cells it holds); a
    period's two dates share one column, as on paper (入/出院日期)."""
    out: list[tuple[str, str, tuple[Field, ...]]] = []
    for c in table.columns:
        if table.end and c.name == table.start:
            out.append((*table.period, (c, table.column(table.end))))
        elif c.name != table.end:
            out.append((c.zh, c.en, (c,)))
    return out


def compliance_label(code: Any, lang: str = "zh") -> str:
    for c, zh, en in MED_ADHERENCE:
        if c == str(code):
            return zh if lang == "zh" else en
    return ""
