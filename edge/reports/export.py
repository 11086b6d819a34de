"""A report as rows, as CSV and as XLSX (openpyxl). The same rows feed the page and both files,
so the numbers cannot differ between them."""
from __future__ import annotations

import csv
import io

from .elderly import Elderly
from .kpi import Report

HEADERS = {
    "zh": ["指标", "分子", "分母", "比率/数值"],
    "en": ["Indicator", "Numerator", "Denominator", "Rate / value"],
}
ORDER = ("managed_total", "managed_hypertension", "managed_diabetes",
         "standard_hypertension", "control_hypertension", "standard_diabetes", "control_diabetes",
         "device_bp")
FOLLOWUP_LABELS = {"hypertension": ("高血压随访人次", "Hypertension follow-ups"),
                   "diabetes": ("2型糖尿病随访人次", "Type 2 diabetes follow-ups")}
MODE_LABELS = {"total": ("合计", "total"), "face_to_face": ("面对面(门诊/家庭)", "face to face"),
               "phone": ("电话", "phone")}


ELDERLY_LABELS = {"rate": ("老年人健康管理率", "Elderly health management rate"),
                  "complete": ("健康体检表完整率", "Complete health check records")}


def _rate(n: int, d: int) -> list:
    return [n, d, round(n / d, 4) if d else None]


def elderly_rows(e: Elderly, lang: str = "zh") -> list[list]:
    """老年人健康管理率 (managed 65+ / 65+ population) and the share of complete 体检表."""
    i = 0 if lang == "zh" else 1
    return [[ELDERLY_LABELS["rate"][i], *_rate(len(e.managed), len(e.population))],
            [ELDERLY_LABELS["complete"][i], *_rate(e.complete, e.checks)]]


def rows(report: Report, lang: str = "zh", elderly: Elderly | None = None) -> list[list]:
    """[label, numerator, denominator, value] per line; rates as fractions rounded to 4 places.
    `elderly`: the year-to-date 老年人健康管理 figures, two lines after the indicators."""
    i = 0 if lang == "zh" else 1
    out: list[list] = []
    for key in ORDER:
        ind = report.indicators[key]
        if ind.denominator is None:
            out.append([ind.label(lang), len(ind.numerator), None, len(ind.numerator)])
        else:
            rate = None if ind.rate is None else round(ind.rate, 4)
            out.append([ind.label(lang), len(ind.numerator), len(ind.denominator), rate])
    if elderly is not None:
        out += elderly_rows(elderly, lang)
    for disease, counts in report.followups.items():
        for mode, n in counts.items():
            out.append([f"{FOLLOWUP_LABELS[disease][i]} - {MODE_LABELS[mode][i]}", n, None, n])
    for r in report.readings_by_source:
        label = ("设备读数" if lang == "zh" else "Readings") + f" - {r['source']} - {r['code']}"
        out.append([label, r["count"], None, r["count"]])
    return out


def title(report: Report, lang: str = "zh") -> str:
    return (f"随访工作报表 {report.period.label}" if lang == "zh"
            else f"Follow-up report {report.period.label}")


def to_csv(report: Report, lang: str = "zh", elderly: Elderly | None = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([title(report, lang), report.period.start.isoformat(), report.period.end.isoformat()])
    w.writerow(HEADERS[lang])
    for r in rows(report, lang, elderly):       # a rate as the page shows it (88.9%); XLSX keeps the fraction, %-formatted
        w.writerow(["" if c is None else (f"{c * 100:.1f}%" if n == 3 and isinstance(c, float) else c)
                    for n, c in enumerate(r)])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")   # BOM so Excel opens Chinese text right


def to_xlsx(report: Report, lang: str = "zh", elderly: Elderly | None = None) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = report.period.label
    ws.append([title(report, lang), report.period.start.isoformat(), report.period.end.isoformat()])
    ws["A1"].font = Font(bold=True)
    ws.append(HEADERS[lang])
    for r in rows(report, lang, elderly):
        ws.append(r)
        if isinstance(r[3], float):
            ws.cell(row=ws.max_row, column=4).number_format = "0.0%"
    ws.column_dimensions["A"].width = 42
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
