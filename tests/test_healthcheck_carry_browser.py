"""主要用药情况 proposed from the box's records in real headless Chromium against a real `clinic-edge
serve` (docs/health-check.md, "Medications proposed"): the doctor confirms one proposed drug with a
click, removes one the resident stopped, leaves one unlooked-at, and the saved record holds the one
confirmed; without JavaScript, a resident on two drugs takes one 确认 per drug. Prints the actions
the two drugs take against typing them (tests/test_healthcheck_rows_browser.py counts those)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from edge.core import residents
from tests.carry_support import follow_up, history
from tests.test_healthcheck_rows_browser import MEDS, part, row_inputs
from tests.test_workbench_browser import browser, log_in, no_sideways_scroll, web  # noqa: F401

playwright_api = pytest.importorskip("playwright.sync_api")
SELFCARE = ("meal", "grooming", "dressing", "toilet", "activity")


def resident(node, name: str, id_number: str) -> str:
    return residents.create(node.store, {"name": name, "id_number": id_number}, division_code="110105001001",
                            now=datetime.now(timezone.utc), actor="test")


def saved_medications(page) -> list[list[str]]:
    meds = page.locator("#show-rows-medications tbody tr")
    return [meds.nth(k).locator("td").all_inner_texts() for k in range(meds.count())]


def test_the_doctor_confirms_one_proposed_drug_removes_another_and_only_the_confirmed_one_is_saved(
        web, browser, node):  # noqa: F811
    rid = resident(node, "钱五", "11010519491231002X")
    history(node.store, rid)
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.set_default_timeout(15000)
    log_in(page, web)
    page.goto(f"{web}/healthcheck/{rid}/new")
    proposed = page.locator("#rows-medications tbody tr.proposed")
    assert proposed.count() == 3                                            # and one empty row to type in
    assert [proposed.nth(k).locator(".proposed-from").inner_text() for k in range(3)] == [
        "随访 2026-10-12", "随访 2026-10-12", "上次体检 2025-11-20"]
    assert page.input_value("input[name=medications_1_dose]") == "每日1次 每次5mg"
    assert page.is_checked("input[name=medications_1_compliance][value='1']")
    assert page.locator("#rows-hospital_stays tbody tr").count() == 1         # not carried: one empty row
    assert page.input_value("input[name=hospital_stays_1_reason]") == ""
    assert page.input_value("input[name=vaccinations_1_name]") == ""
    assert no_sideways_scroll(page)
    part(page, "#row-medications", "49-healthcheck-medications-proposed")

    row_inputs(page, "medications", 1).locator("button.confirm-row").click()      # 确认 amlodipine
    assert page.locator("#rows-medications tbody tr.proposed").count() == 2
    assert page.locator("input[name=medications_1_proposed]").count() == 0
    row_inputs(page, "medications", 3).locator("button.remove-row").click()       # stopped: 删除 atorvastatin
    assert page.locator("input[name=medications_3_name]").count() == 0
    assert page.locator("#proposed-medications").count() == 1               # metoprolol still unconfirmed
    for item in SELFCARE:
        page.click(f"input[name=selfcare_{item}][value='1']")
    page.click("#save")
    page.wait_for_selector("#saved")
    page.reload()                                                           # what was stored
    assert saved_medications(page) == [["氨氯地平片", "", "每日1次 每次5mg", "", "规律"]]
    assert "酒石酸美托洛尔片" not in page.content() and "阿托伐他汀钙片" not in page.content()
    page.close()


def test_without_javascript_a_resident_on_two_drugs_takes_one_confirm_each(web, browser, node):  # noqa: F811
    rid = resident(node, "吴六", "110105195001010012")
    follow_up(node.store, rid)
    ctx = browser.new_context(viewport={"width": 800, "height": 1280}, locale="zh-CN", java_script_enabled=False)
    page = ctx.new_page()
    page.set_default_timeout(15000)
    log_in(page, web)
    page.goto(f"{web}/healthcheck/{rid}/new")
    actions = 0
    for _ in range(2):
        with page.expect_navigation():                                      # a round trip, nothing saved
            page.locator("#rows-medications tbody tr.proposed button.confirm-row").first.click()
        actions += 1
    assert page.locator("#rows-medications tbody tr.proposed").count() == 0
    assert page.locator("#proposed-medications").count() == 0
    assert node.store.scalar("SELECT count(*) FROM health_checks") == 0
    part(page, "#row-medications", "50-healthcheck-medications-confirmed-no-js")
    for item in SELFCARE:
        page.click(f"input[name=selfcare_{item}][value='1']")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert saved_medications(page) == [["氨氯地平片", "", "每日1次 每次5mg", "", "规律"],
                                       ["酒石酸美托洛尔片", "", "每日2次 每次25mg", "", "规律"]]
    typed = 5 * len(MEDS) + 1                                               # 5 cells each, 添加一行 for the second
    print(f"\nmedication rows for a resident on two drugs: {typed} actions typed "
          f"(tests/test_healthcheck_rows_browser.py), {actions} proposed (one 确认 each)")
    ctx.close()
