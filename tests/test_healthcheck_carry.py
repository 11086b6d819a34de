"""主要用药情况 proposed from what the box knows (docs/health-check.md, "Medications proposed"), on a
real node's SQLite store through Flask's test client: a resident whose latest hypertension follow-up
records two drugs and whose check of last year holds one of them and another. The new check
proposes three rows, each with its source; saving without confirming saves none; confirming two
(the form's 确认 buttons, posted as without JavaScript) saves exactly those two, as the doctor's.
Hospital stays and vaccinations of the last check are not carried."""
from __future__ import annotations

import json

import pytest

from edge.core.errors import ValidationError
from edge.core.followup import records as followups
from edge.core.healthcheck import carry, records, rows
from carry_support import AT, history
from followup_support import app_client, form_fields  # noqa: F401 (fixture)

SELFCARE = {f"selfcare_{i}": "1" for i in ("meal", "grooming", "dressing", "toilet", "activity")}
URL = "/healthcheck/R1/new"


def proposed_on(html: str) -> list[tuple[str, str, str, str, str]]:
    """(name, usage, dose, adherence, source) of each proposed medication row on the form."""
    f = form_fields(html, "healthcheck-form")
    out = []
    for key in sorted(k for k in f if k.startswith("medications_") and k.endswith("_" + rows.PROPOSED)):
        n = key.split("_")[1]
        out.append(tuple((f.get(f"medications_{n}_{c}") or [""])[0]
                         for c in ("name", "usage", "dose", "compliance")) + (f[key][0],))
    return out


def post(client, html: str, **changes) -> tuple[int, str, dict]:
    data = form_fields(html, "healthcheck-form")
    data.update({k: [v] for k, v in changes.items()})
    r = client.post(URL, data=data)
    return r.status_code, r.text, r.headers


def saved_medications(store) -> list[dict]:
    return store.query("SELECT name, usage, dose, duration, compliance FROM health_check_rows r"
                       " JOIN health_checks c ON c.id = r.check_id WHERE r.field = 'medications'"
                       " AND c.check_date != '2025-11-20' ORDER BY n")


def test_the_store_proposes_the_follow_ups_drugs_then_the_last_checks_others_each_with_its_source(app_client):
    node, _client = app_client
    history(node.store)
    assert carry.proposed(node.store, "R1") == [
        {"name": "氨氯地平片", "dose": "每日1次 每次5mg", "compliance": "1", "proposed": "followup:2026-10-12"},
        {"name": "酒石酸美托洛尔片", "dose": "每日2次 每次25mg", "compliance": "1", "proposed": "followup:2026-10-12"},
        {"name": "阿托伐他汀钙片", "usage": "口服", "dose": "每晚1次 每次20mg", "proposed": "check:2025-11-20"}]


def test_a_follow_up_without_adherence_leaves_it_and_its_insulin_is_a_row(app_client):
    node, _client = app_client
    followups.save(node.store, resident_id="R1", form="diabetes", actor="doc", at=AT, values={
        "visit_date": "2026-11-02", "visit_mode": "1", "insulin_type": "门冬胰岛素30",
        "insulin_usage": "早晚餐前皮下注射 各12IU",
        "medications": [{"name": "二甲双胍片", "times_per_day": 2, "dose_mg": 500.0}]})
    assert carry.proposed(node.store, "R1") == [
        {"name": "二甲双胍片", "dose": "每日2次 每次500mg", "proposed": "followup:2026-11-02"},
        {"name": "门冬胰岛素30", "usage": "早晚餐前皮下注射 各12IU", "proposed": "followup:2026-11-02"}]


def test_the_new_check_proposes_three_rows_and_saving_without_confirming_saves_none(app_client):
    node, client = app_client
    history(node.store)
    page = client.get(URL).text
    assert proposed_on(page) == [("氨氯地平片", "", "每日1次 每次5mg", "1", "followup:2026-10-12"),
                                 ("酒石酸美托洛尔片", "", "每日2次 每次25mg", "1", "followup:2026-10-12"),
                                 ("阿托伐他汀钙片", "口服", "每晚1次 每次20mg", "", "check:2025-11-20")]
    assert page.count("随访 2026-10-12") == 2 and page.count("上次体检 2025-11-20") == 1
    assert 'id="proposed-medications"' in page
    f = form_fields(page, "healthcheck-form")
    assert not any(f.get(k) != [""] for k in f if k.startswith(("hospital_stays_", "vaccinations_")))
    status, _text, headers = post(client, page, **SELFCARE)
    assert status == 303
    assert saved_medications(node.store) == []
    check = node.store.one("SELECT id FROM health_checks WHERE check_date != '2025-11-20'")
    assert records.get(node.store, check["id"])["values"]["medications"] == []


def test_confirming_two_saves_exactly_those_two_as_the_doctors(app_client):
    node, client = app_client
    history(node.store)
    page = client.get(URL).text
    status, page, _ = post(client, page, row_confirm_medications_1="")     # 确认, as without JavaScript
    assert status == 200 and [p[0] for p in proposed_on(page)] == ["酒石酸美托洛尔片", "阿托伐他汀钙片"]
    assert "medications_1_proposed" not in form_fields(page, "healthcheck-form")
    status, page, _ = post(client, page, row_confirm_medications_3="")
    assert [p[0] for p in proposed_on(page)] == ["酒石酸美托洛尔片"]
    status, page, _ = post(client, page, temperature="45", **SELFCARE)        # refused: each row as it was
    assert status == 422 and [p[0] for p in proposed_on(page)] == ["酒石酸美托洛尔片"]
    assert form_fields(page, "healthcheck-form")["medications_3_name"] == ["阿托伐他汀钙片"]
    assert node.store.scalar("SELECT count(*) FROM health_checks") == 1     # the row buttons save nothing
    status, _text, headers = post(client, page, temperature="", **SELFCARE)
    assert status == 303, _text[:2000]
    assert saved_medications(node.store) == [
        {"name": "氨氯地平片", "usage": None, "dose": "每日1次 每次5mg", "duration": None, "compliance": "1"},
        {"name": "阿托伐他汀钙片", "usage": "口服", "dose": "每晚1次 每次20mg", "duration": None, "compliance": None}]
    check = node.store.one("SELECT id, author FROM health_checks WHERE check_date != '2025-11-20'")
    assert check["author"] == "doc"                                         # the doctor's, not the follow-up's
    h = records.get(node.store, check["id"])
    assert [set(r) & {rows.PROPOSED} for r in h["values"]["medications"]] == [set(), set()]
    sent = json.loads(node.store.one("SELECT payload FROM outbox WHERE kind = 'health_check' AND record_id = ?",
                                     (check["id"],))["payload"])
    assert "followup:" not in json.dumps(sent) and sent["author"] == "doc"
    shown = client.get(headers["Location"]).text
    assert "随访 2026-10-12" not in shown and "酒石酸美托洛尔片" not in shown


def test_the_store_refuses_a_proposed_row_passed_to_it(app_client):
    node, _client = app_client
    with pytest.raises(ValidationError):
        records.save(node.store, resident_id="R1", actor="doc", at=AT, values={
            "check_date": "2026-10-12", "medications": [{"name": "氨氯地平片", rows.PROPOSED: "followup:2026-10-12"}]})
    assert node.store.scalar("SELECT count(*) FROM health_checks") == 0
