"""The 健康体检表's tables of rows (住院史, 家庭病床史, 主要用药情况, 非免疫规划预防接种史): each
cell checked at its boundaries, the rows saved per version (migration 611), and a free text saved
before the rows kept readable as a row of its own."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from edge.core import migrations
from edge.core.followup.fields import MED_ADHERENCE
from edge.core.healthcheck import records, rows
from edge.core.healthcheck.validation import validate
from edge.core.store import Store

TODAY = date(2026, 12, 3)
BASE = {"check_date": "2026-12-03"}
AT = datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc)
TEXT_CELLS = [(t.name, c) for t in rows.TABLES for c in t.columns if c.kind == "text"]


def cells(table: str, n: int, **kw) -> dict:
    return {rows.cell(table, n, k): v for k, v in kw.items()}


def test_two_medications_and_a_stay_are_read_in_order_and_a_blank_row_is_none():
    raw = {**BASE, **cells("medications", 1, name="氨氯地平片", usage="口服 每日1次", dose="5mg", duration="3年",
                           compliance="1"),
           **cells("medications", 2, name="", usage="", dose=""),                      # left blank
           **cells("medications", 4, name="二甲双胍", usage="口服 每日2次", dose="0.5g", compliance="2"),
           **cells("hospital_stays", 1, start_date="2026-03-02", end_date="2026-03-09", reason="肺炎",
                   facility="县人民医院", record_no="A-1203")}
    v = validate(raw, today=TODAY)
    assert v.ok, v.errors
    assert [m["name"] for m in v.values["medications"]] == ["氨氯地平片", "二甲双胍"]
    assert v.values["medications"][1] == {"name": "二甲双胍", "usage": "口服 每日2次", "dose": "0.5g",
                                          "duration": None, "compliance": "2"}
    assert v.values["hospital_stays"] == [{"start_date": "2026-03-02", "end_date": "2026-03-09", "reason": "肺炎",
                                           "facility": "县人民医院", "record_no": "A-1203"}]
    assert v.values["home_beds"] == [] and v.values["vaccinations"] == []


@pytest.mark.parametrize("table", ["hospital_stays", "home_beds"])
def test_a_period_may_end_on_its_first_day_but_not_before_it(table):
    same = validate({**BASE, **cells(table, 1, start_date="2026-05-01", end_date="2026-05-01")}, today=TODAY)
    assert same.ok, same.errors
    before = validate({**BASE, **cells(table, 1, start_date="2026-05-01", end_date="2026-04-30")}, today=TODAY)
    t = rows.BY_TABLE[table]
    end, start = t.column("end_date"), t.column("start_date")
    assert before.errors == {rows.cell(table, 1, "end_date"): f"{t.zh}第1行：{end.zh}不能早于{start.zh}"}
    open_stay = validate({**BASE, **cells(table, 1, start_date="2026-05-01")}, today=TODAY)
    assert open_stay.ok and open_stay.values[table][0]["end_date"] is None       # still in hospital / bed open


@pytest.mark.parametrize("table, col", [("hospital_stays", "start_date"), ("hospital_stays", "end_date"),
                                        ("home_beds", "start_date"), ("home_beds", "end_date"),
                                        ("vaccinations", "start_date")])
def test_a_date_may_be_today_but_not_tomorrow_and_must_be_a_real_date(table, col):
    first = {"hospital_stays": "start_date", "home_beds": "start_date", "vaccinations": "name"}[table]
    base = {**BASE, **cells(table, 1, **{first: "2026-01-05" if first == "start_date" else "流感疫苗"})}
    key = rows.cell(table, 1, col)
    assert validate({**base, key: "2026-12-03"}, today=TODAY).ok
    tomorrow = validate({**base, key: "2026-12-04"}, today=TODAY)
    label = rows.BY_TABLE[table].column(col).zh
    assert tomorrow.errors[key].endswith(f"{label}不能晚于今天")
    assert validate({**base, key: "2026-02-30"}, today=TODAY).errors[key].endswith(f"{label}应为日期(年-月-日)")


@pytest.mark.parametrize("table, col", TEXT_CELLS, ids=lambda x: getattr(x, "name", x))
def test_every_text_cell_takes_its_length_and_refuses_one_more(table, col):
    t = rows.BY_TABLE[table]
    required = {t.required: "2026-01-05" if t.required == "start_date" else "x"} if col.name != t.required else {}
    key = rows.cell(table, 1, col.name)
    ok = validate({**BASE, **cells(table, 1, **required), key: "药" * col.max_length}, today=TODAY)
    assert ok.ok, ok.errors
    long = validate({**BASE, **cells(table, 1, **required), key: "药" * (col.max_length + 1)}, today=TODAY)
    assert long.errors == {key: f"{t.zh}第1行：{col.zh}不能超过{col.max_length}个字"}


def test_adherence_takes_the_follow_up_forms_codes_and_nothing_else():
    assert [c for c, _, _ in MED_ADHERENCE] == ["1", "2", "3"]          # 规律, 间断, 不服药
    for code in ("1", "2", "3"):
        assert validate({**BASE, **cells("medications", 1, name="阿司匹林", compliance=code)}, today=TODAY).ok
    for bad in ("0", "4", "规律"):
        v = validate({**BASE, **cells("medications", 1, name="阿司匹林", compliance=bad)}, today=TODAY)
        assert v.errors == {"medications_1_compliance": "主要用药情况第1行：服药依从性的选项无效"}


@pytest.mark.parametrize("table, given, needed", [
    ("medications", {"dose": "5mg"}, "药物名称"), ("vaccinations", {"start_date": "2026-10-01"}, "名称"),
    ("hospital_stays", {"reason": "肺炎"}, "入院日期"), ("home_beds", {"facility": "卫生院"}, "建床日期")])
def test_a_row_needs_its_first_column(table, given, needed):
    v = validate({**BASE, **cells(table, 3, **given)}, today=TODAY)
    t = rows.BY_TABLE[table]
    assert v.errors == {rows.cell(table, 3, t.required): f"{t.zh}第1行：请填写{needed}"}


def test_ten_rows_are_taken_and_an_eleventh_is_refused():
    ten = {k: v for n in range(1, 11) for k, v in cells("medications", n, name=f"药{n}").items()}
    assert len(validate({**BASE, **ten}, today=TODAY).values["medications"]) == 10
    v = validate({**BASE, **ten, **cells("medications", 11, name="药11")}, today=TODAY)
    assert v.errors == {"medications_11_name": "主要用药情况第11行：最多10行"}


def test_messages_in_english():
    v = validate({**BASE, **cells("hospital_stays", 1, start_date="2026-05-02", end_date="2026-05-01"),
                  **cells("medications", 1, dose="5mg")}, today=TODAY, lang="en")
    assert v.errors == {"hospital_stays_1_end_date": "Hospital stays, row 1: the discharge date cannot be before "
                                                     "the admission date",
                        "medications_1_name": "Main medications, row 1: give the drug"}


def test_every_column_has_a_place_in_the_rows_table():
    assert {c.name for t in rows.TABLES for c in t.columns} <= set(records.ROW_COLUMNS)


def _resident(store, rid="res-1"):
    store.conn.execute("INSERT INTO residents (id, name, birth_date, created_at, updated_at)"
                       " VALUES (?, '孙三', '1950-02-01', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')", (rid,))


def test_rows_are_saved_per_version_and_a_correction_keeps_the_old_ones(tmp_path):
    store = Store(tmp_path / "n.db")
    _resident(store)
    raw = {**BASE, **cells("medications", 1, name="氨氯地平片", usage="口服", dose="5mg", compliance="1"),
           **cells("medications", 2, name="二甲双胍", dose="0.5g", compliance="3"),
           **cells("vaccinations", 1, name="23价肺炎球菌多糖疫苗", start_date="2026-10-12", facility="乡卫生院")}
    first = records.save(store, resident_id="res-1", values=validate(raw, today=TODAY).values, actor="doc", at=AT)
    fixed = {**raw, "medications_2_compliance": "2"}
    second = records.save(store, resident_id="res-1", values=validate(fixed, today=TODAY).values, actor="doc",
                          at=AT, check_id=first.id, reason="依从性改正")
    v1, v2 = records.get(store, first.id, 1)["values"], records.get(store, first.id)["values"]
    assert [m["compliance"] for m in v1["medications"]] == ["1", "3"]
    assert [m["compliance"] for m in v2["medications"]] == ["1", "2"]
    assert v2["medications"][0] == {"name": "氨氯地平片", "usage": "口服", "dose": "5mg", "compliance": "1"}
    assert v2["vaccinations"] == [{"name": "23价肺炎球菌多糖疫苗", "start_date": "2026-10-12", "facility": "乡卫生院"}]
    assert v2["hospital_stays"] == [] and second.version == 2
    payload = json.loads(store.one("SELECT payload FROM outbox WHERE record_id = ? AND version = 2",
                                   (first.id,))["payload"])
    assert [m["name"] for m in payload["values"]["medications"]] == ["氨氯地平片", "二甲双胍"]
    with pytest.raises(Exception, match="never"):
        store.conn.execute("DELETE FROM health_check_rows")
    store.close()


def test_a_free_text_saved_before_the_rows_is_kept_as_a_row_of_its_own(tmp_path):
    """A node upgraded from before migration 611: the four fields were free text in each version."""
    path = tmp_path / "n.db"
    store = Store(path)
    _resident(store)
    for sql in ("DROP TRIGGER health_check_rows_no_update", "DROP TRIGGER health_check_rows_no_delete",
                "DROP TABLE health_check_rows", "DELETE FROM _migrations WHERE version = 611"):
        store.conn.execute(sql)
    old = {"check_date": "2026-06-01", "medications": "硝苯地平缓释片 10mg 每日2次，规律", "hospital_stays": "  ",
           "vaccinations": "2025年10月 流感疫苗"}
    store.conn.execute("INSERT INTO health_checks (id, resident_id, version, check_date, year, author, created_at,"
                       " updated_at) VALUES ('hc-old', 'res-1', 1, '2026-06-01', 2026, 'doc', 'x', 'x')")
    store.conn.execute("INSERT INTO health_check_versions (check_id, version, data, author, saved_at)"
                       " VALUES ('hc-old', 1, ?, 'doc', 'x')", (json.dumps(old, ensure_ascii=False),))
    store.close()
    again = Store(path)                          # a start applies 611
    assert 611 in {r[0] for r in again.conn.execute("SELECT version FROM _migrations")}
    values = records.get(again, "hc-old")["values"]
    assert values["medications"] == [{"text": "硝苯地平缓释片 10mg 每日2次，规律"}]
    assert values["vaccinations"] == [{"text": "2025年10月 流感疫苗"}]
    assert values["hospital_stays"] == [] and values["home_beds"] == []
    again.close()
    assert 611 in migrations.registered()


# ---------------------------------------------------------------- the page, without JavaScript
from followup_support import app_client, form_fields, seed  # noqa: E402,F401 (fixture)


def _post(client, html, **changes):
    data = form_fields(html, "healthcheck-form")
    for k, v in changes.items():
        data[k] = [v]
    return client.post("/healthcheck/R2/new", data=data)


SELF = {"selfcare_meal": "1", "selfcare_grooming": "1", "selfcare_dressing": "1", "selfcare_toilet": "1",
        "selfcare_activity": "1"}


def test_rows_are_added_removed_refused_and_saved_by_posting_the_form(app_client):
    node, client = app_client
    seed(node.store, rid="R2", birth="1950-01-01")
    page = client.get("/healthcheck/R2/new").text
    assert 'name="medications_1_name"' in page and 'name="medications_2_name"' not in page   # one row to type in
    added = _post(client, page, row_add_medications="", medications_1_name="氨氯地平片", medications_1_dose="5mg")
    assert added.status_code == 200 and 'id="form-errors"' not in added.text            # not a save
    f = form_fields(added.text, "healthcheck-form")
    assert f["medications_1_name"] == ["氨氯地平片"] and f["medications_2_name"] == [""]
    two = _post(client, added.text, row_add_medications="", medications_2_name="阿司匹林肠溶片",
                medications_2_compliance="2")
    gone = _post(client, two.text, row_remove_medications_1="")
    f = form_fields(gone.text, "healthcheck-form")
    assert "medications_1_name" not in f and f["medications_2_name"] == ["阿司匹林肠溶片"]
    assert f["medications_2_compliance"] == ["2"] and f["medications_3_name"] == [""]
    bad = _post(client, two.text, **SELF, hospital_stays_1_start_date="2026-03-09",
                hospital_stays_1_end_date="2026-03-02", hospital_stays_1_reason="肺炎")
    assert bad.status_code == 422
    assert 'id="err-hospital_stays_1_end_date">住院史第1行：出院日期不能早于入院日期<' in bad.text
    assert form_fields(bad.text, "healthcheck-form")["hospital_stays_1_reason"] == ["肺炎"]   # kept as typed
    assert node.store.scalar("SELECT count(*) FROM health_checks") == 0
    ok = _post(client, bad.text, hospital_stays_1_end_date="2026-03-16")
    assert ok.status_code == 303, ok.text[:1500]
    shown = client.get(ok.headers["Location"]).text
    assert 'id="show-rows-medications"' in shown and "阿司匹林肠溶片" in shown and "间断" in shown
    assert "2026-03-16" in shown
    printed = client.get(ok.headers["Location"].split("?")[0] + "/print").text
    table = printed.split('id="p-rows-medications"')[1].split("</table>")[0]
    assert table.count("<tr") == 1 + 6                   # the header and the paper form's six rows
    assert "氨氯地平片" in table and "阿司匹林肠溶片" in table
