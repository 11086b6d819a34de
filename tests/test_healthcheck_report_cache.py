"""老年人健康管理率 in the report cache and in the report's CSV/XLSX export (docs/health-check.md,
"In the report"). A saved health check is a report input (migration 610): the kept figure is given
again until a save, then the very next call has the new one. Real SQLite file, the node's own code."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone

import pytest
from openpyxl import load_workbook

from edge.core import residents
from edge.core.healthcheck import records
from edge.core.store import Store
from edge.reports import cached, export, source
from edge.reports.population import month

NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
TODAY = date(2026, 11, 20)


@pytest.fixture
def store(tmp_path):
    cached.forget()
    s = Store(tmp_path / "node.db")
    yield s
    cached.forget()


def person(store, name, birth):
    return residents.create(store, {"name": name, "birth_date": birth, "sex": "1"}, division_code="110101001001",
                            now=NOW, actor="doc", today=TODAY)


def check(store, rid, day="2026-11-20", **values):
    return records.save(store, resident_id=rid, values={"check_date": day, **values}, actor="doc", at=NOW)


def test_the_rate_is_kept_until_a_health_check_is_saved_or_corrected(store):
    a, b = person(store, "甲", "1950-01-01"), person(store, "乙", "1955-06-01")
    person(store, "丙", "1990-01-01")                      # under 65: not in the population
    first = cached.elderly(store, 2026, until=TODAY)
    assert (first.managed, len(first.population)) == ((), 2)
    kept = cached.counts["kept"]
    assert cached.elderly(store, 2026, until=TODAY) is first and cached.counts["kept"] == kept + 1
    saved = check(store, a)
    after = cached.elderly(store, 2026, until=TODAY)
    assert after.managed == (a,) and after.rate == 1 / 2 and after.checks == 1
    records.save(store, resident_id=a, values={"check_date": "2025-12-30"}, actor="doc", at=NOW,
                 check_id=saved.id, reason="日期填错")          # moved to last year: not managed in 2026
    assert cached.elderly(store, 2026, until=TODAY).managed == ()
    check(store, b)
    assert cached.elderly(store, 2026, until=TODAY).managed == (b,)


def test_the_csv_and_xlsx_exports_carry_the_rate_and_the_complete_share(store):
    a = person(store, "甲", "1950-01-01")
    person(store, "乙", "1955-06-01")
    person(store, "丁", "1940-03-01")
    check(store, a)
    p = month(2026, 11)
    r = source.report(store, p, "Asia/Shanghai")
    e = cached.elderly(store, 2026, until=p.end)
    lines = list(csv.reader(io.StringIO(export.to_csv(r, "zh", e).decode("utf-8-sig"))))
    assert ["老年人健康管理率", "1", "3", "33.3%"] in lines
    assert ["健康体检表完整率", "0", "1", "0.0%"] in lines
    en = list(csv.reader(io.StringIO(export.to_csv(r, "en", e).decode("utf-8-sig"))))
    assert ["Elderly health management rate", "1", "3", "33.3%"] in en
    ws = load_workbook(io.BytesIO(export.to_xlsx(r, "zh", e))).active
    row = next(row for row in ws.iter_rows() if row[0].value == "老年人健康管理率")
    assert [c.value for c in row] == ["老年人健康管理率", 1, 3, 0.3333] and row[3].number_format == "0.0%"
    assert "老年人健康管理率" not in export.to_csv(r, "zh").decode("utf-8-sig")    # only when given
