"""The county table and the de-identified export as CSV and XLSX. The same rows feed the page
and both files, so their numbers cannot differ. openpyxl is imported only when an XLSX is asked
for, never when the hub starts."""
from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

from .county import LABELS, ORDER, CountyTable, rate

LEVELS = {"clinic": "卫生室 clinic", "township": "乡镇合计 township", "county": "全县 county"}


def header() -> list[str]:
    """Chinese first, then English, in every column name (as the hub's pages are)."""
    head = ["层级 level", "乡镇 township", "名称 name", "节点 node", "报告状态 status", "已上报 reported"]
    for key in ORDER:
        label = " ".join(LABELS[key])
        if key.startswith("managed_"):
            head.append(label)
        else:
            head += [f"{label} 分子 numerator", f"{label} 分母 denominator", f"{label} 比率 rate"]
    return head


def rows(t: CountyTable) -> list[list]:
    """One list per table row; a rate as a fraction rounded to 4 places, None when it has no
    denominator or the clinic did not report."""
    out = []
    for r in t.rows:
        line: list = [LEVELS[r.level], r.township, r.name, r.node, r.problem or "ok", f"{r.reported}/{r.clinics}"]
        for key in ORDER:
            fig = r.figures.get(key) if r.figures else None
            if key.startswith("managed_"):
                line.append(None if fig is None else fig[0])
            elif fig is None:
                line += [None, None, None]
            else:
                q = rate(fig)
                line += [fig[0], fig[1], None if q is None else round(q, 4)]
        out.append(line)
    return out


def to_csv(title: Sequence[str], head: Sequence[str], body: Iterable[Sequence]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(title)
    w.writerow(head)
    for r in body:
        w.writerow(["" if c is None else c for c in r])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")   # BOM so Excel opens Chinese text right


def to_xlsx(title: Sequence[str], head: Sequence[str], body: Iterable[Sequence], *, sheet: str,
            rate_columns: Iterable[int] = ()) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = sheet[:31]
    ws.append(list(title))
    ws["A1"].font = Font(bold=True)
    ws.append(list(head))
    rates = set(rate_columns)
    for r in body:
        ws.append(list(r))
        for col in rates:
            if isinstance(r[col], float):
                ws.cell(row=ws.max_row, column=col + 1).number_format = "0.0%"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def rate_columns() -> list[int]:
    return [i for i, h in enumerate(header()) if h.endswith("比率 rate")]


def county_csv(t: CountyTable) -> bytes:
    return to_csv([f"县域慢病管理报表 county report {t.period}"], header(), rows(t))


def county_xlsx(t: CountyTable) -> bytes:
    return to_xlsx([f"县域慢病管理报表 county report {t.period}"], header(), rows(t), sheet=t.period,
                   rate_columns=rate_columns())
