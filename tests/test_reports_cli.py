"""`clinic-edge report show|write|export` through the real command line."""
import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from conftest import clinic_edge
from edge.core.followup import records
from followup_support import seed


def test_report_show_write_export(env, node, tmp_path):
    seed(node.store)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    records.save(node.store, resident_id="R1", form="hypertension", actor="doc", at=datetime.now(ZoneInfo("UTC")),
                 values={"visit_date": today.isoformat(), "visit_mode": "1", "sbp": 128, "dbp": 82,
                         "classification": "1", "next_visit_date": "2099-01-01"})
    period = today.strftime("%Y-%m")
    shown = json.loads(clinic_edge(env, "report", "show", "--period", period, "--json").stdout)
    assert shown["indicators"]["control_hypertension"]["numerator_ids"] == ["R1"]
    assert "管理人群血压控制率" in clinic_edge(env, "report", "show", "--period", period).stdout
    out = clinic_edge(env, "report", "write", "--period", period).stdout
    assert out.startswith(f"report {period} written: rep-")
    again = clinic_edge(env, "report", "write", "--period", period, "--if-missing").stdout
    assert "already written" in again
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'report'") == 1
    xlsx = tmp_path / "r.xlsx"
    clinic_edge(env, "report", "export", "--period", period, "-o", str(xlsx))
    rows = {r[0]: r[1:] for r in load_workbook(io.BytesIO(xlsx.read_bytes())).active.iter_rows(
        min_row=3, values_only=True)}
    assert rows["管理人群血压控制率"] == (1, 1, 1.0)
    bad = clinic_edge(env, "report", "show", "--period", "2026-13", check=False)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
