"""CSV and XLSX hold the same numbers as the report (opened back with csv and openpyxl)."""
import csv
import io

from openpyxl import load_workbook

from edge.reports import export, kpi
from edge.reports.population import quarter
from test_reports_kpi import PATIENTS, VISITS


def test_xlsx_and_csv_hold_the_report_numbers():
    r = kpi.compute(PATIENTS, VISITS, quarter(2026, 1),
                    readings_by_source=[{"source": "mqtt", "code": "8480-6", "count": 12}])
    wb = load_workbook(io.BytesIO(export.to_xlsx(r)))
    ws = wb.active
    assert ws.title == "2026-Q1"
    sheet = {row[0]: row[1:] for row in ws.iter_rows(min_row=3, values_only=True)}
    assert sheet["管理人群血压控制率"] == (2, 6, round(2 / 6, 4))
    assert sheet["高血压患者规范管理率"] == (4, 6, round(4 / 6, 4))
    assert sheet["管理人群血糖控制率"] == (2, 3, round(2 / 3, 4))
    assert sheet["慢病已管理患者数(去重)"] == (8, None, 8)
    assert sheet["高血压随访人次 - 电话"] == (1, None, 1)
    assert sheet["设备读数 - mqtt - 8480-6"] == (12, None, 12)
    text = export.to_csv(r, "en").decode("utf-8-sig")
    rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(text))}
    assert rows["BP control rate (managed)"] == ["2", "6", "33.3%"]                # as the page shows it
    assert rows["Type 2 diabetes standard-management rate"] == ["2", "3", "66.7%"]
