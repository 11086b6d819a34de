"""The 健康体检表's tables of rows in real headless Chromium against a real `clinic-edge serve`
(docs/health-check.md, "Rows"): a doctor adds two medication rows and a hospital stay, a stay that
ends before it began is refused with its message beside the cell and nothing typed is lost, the
fixed form saves, and the saved record, reloaded, and its printout show the rows. Prints the
actions one medication row takes. Screenshots go to test-artifacts/workbench/."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from edge.core import residents
from tests.test_workbench_browser import SHOTS, browser, log_in, no_sideways_scroll, web  # noqa: F401

playwright_api = pytest.importorskip("playwright.sync_api")

MEDS = [("氨氯地平片", "口服 每日1次", "5mg", "3年", "1"), ("二甲双胍缓释片", "口服 每日2次", "0.5g", "8个月", "2")]


def part(page, selector: str, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(selector).screenshot(path=str(SHOTS / f"{name}.png"))


def row_inputs(page, table: str, k: int):
    """The k-th row (from 1) of a table on the form, as the page has it now."""
    return page.locator(f"#rows-{table} tbody tr").nth(k - 1)


def fill_medication(page, k: int, med) -> int:
    """Type one medication row; returns the actions it took (each fill or click is one)."""
    name, usage, dose, duration, compliance = med
    tr = row_inputs(page, "medications", k)
    tr.locator("input[name$='_name']").fill(name)
    tr.locator("input[name$='_usage']").fill(usage)
    tr.locator("input[name$='_dose']").fill(dose)
    tr.locator("input[name$='_duration']").fill(duration)
    tr.locator(f"input[name$='_compliance'][value='{compliance}']").click()
    return 5


def test_a_doctor_adds_medications_and_a_stay_a_bad_row_is_refused_and_the_rows_are_saved(web, browser, node):  # noqa: F811
    rid = residents.create(node.store, {"name": "孙三", "id_number": "11010519491231002X"},
                           division_code="110105001001", now=datetime.now(timezone.utc), actor="test")
    today = date.today()
    admitted, discharged = today - timedelta(days=40), today - timedelta(days=33)
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.set_default_timeout(15000)
    log_in(page, web)
    page.goto(f"{web}/healthcheck/{rid}/new")
    assert page.locator("#rows-medications tbody tr").count() == 1          # one row to type in
    for item in ("meal", "grooming", "dressing", "toilet", "activity"):
        page.click(f"input[name=selfcare_{item}][value='1']")

    actions = [fill_medication(page, 1, MEDS[0])]
    page.click("#add-medications")                                          # 添加一行, in the page
    assert page.locator("#rows-medications tbody tr").count() == 2
    assert page.evaluate("document.activeElement.name") == "medications_2_name"
    actions.append(1 + fill_medication(page, 2, MEDS[1]))
    page.click("#add-medications")                                          # one too many: removed again
    row_inputs(page, "medications", 3).locator("input[name$='_name']").fill("错录的药")
    row_inputs(page, "medications", 3).locator("button.remove-row").click()
    assert page.locator("#rows-medications tbody tr").count() == 2

    stay = row_inputs(page, "hospital_stays", 1)
    stay.locator("input[name$='_start_date']").fill(discharged.isoformat())  # the dates swapped by mistake
    stay.locator("input[name$='_end_date']").fill(admitted.isoformat())
    stay.locator("input[name$='_reason']").fill("社区获得性肺炎")
    stay.locator("input[name$='_facility']").fill("县人民医院")
    stay.locator("input[name$='_record_no']").fill("ZY-20261024")
    assert no_sideways_scroll(page)
    part(page, "fieldset.group-history", "44-healthcheck-rows")
    page.click("#save")

    page.wait_for_selector("#form-errors")
    assert page.inner_text("#err-hospital_stays_1_end_date") == "住院史第1行：出院日期不能早于入院日期"
    assert [page.input_value(f"input[name=medications_{k}_name]") for k in (1, 2)] == ["氨氯地平片", "二甲双胍缓释片"]
    assert page.is_checked("input[name=medications_2_compliance][value='2']")
    assert page.input_value("input[name=hospital_stays_1_record_no]") == "ZY-20261024"
    assert node.store.scalar("SELECT count(*) FROM health_checks") == 0
    part(page, "fieldset.group-history", "45-healthcheck-rows-refused")
    stay = row_inputs(page, "hospital_stays", 1)
    stay.locator("input[name$='_start_date']").fill(admitted.isoformat())
    stay.locator("input[name$='_end_date']").fill(discharged.isoformat())
    page.click("#save")
    page.wait_for_selector("#saved")

    page.reload()                                                           # what was stored, not what was sent
    meds = page.locator("#show-rows-medications tbody tr")
    assert [meds.nth(k).locator("td").all_inner_texts() for k in range(meds.count())] == [
        ["氨氯地平片", "口服 每日1次", "5mg", "3年", "规律"], ["二甲双胍缓释片", "口服 每日2次", "0.5g", "8个月", "间断"]]
    assert page.locator("#show-rows-hospital_stays tbody tr td").all_inner_texts() == [
        admitted.isoformat(), discharged.isoformat(), "社区获得性肺炎", "县人民医院", "ZY-20261024"]
    assert "错录的药" not in page.content()
    part(page, "#show-medications", "46-healthcheck-rows-saved")

    with page.expect_popup() as popup:
        page.click("#print-link")
    printed = popup.value
    printed.wait_for_selector("#p-rows-medications")
    assert printed.locator("#p-rows-medications tbody tr").count() == 6      # the paper form's six rows
    assert printed.locator("#p-rows-hospital_stays tbody tr").count() == 2
    assert printed.locator("#p-rows-medications tbody tr").nth(1).locator("td").first.inner_text() == "二甲双胍缓释片"
    printed.emulate_media(media="print")
    part(printed, "#p-group-history", "47-healthcheck-rows-printed")
    print(f"\nmedication rows: {actions[0]} actions for the first (name, usage, dose, duration, adherence), "
          f"{actions[1]} for each further one (添加一行 first)")
    page.close()


def test_without_javascript_the_row_buttons_post_the_form_and_nothing_is_saved(web, browser, node):  # noqa: F811
    rid = residents.create(node.store, {"name": "周四", "id_number": "110105195001010012"},
                           division_code="110105001001", now=datetime.now(timezone.utc), actor="test")
    ctx = browser.new_context(viewport={"width": 800, "height": 1280}, locale="zh-CN", java_script_enabled=False)
    page = ctx.new_page()
    page.set_default_timeout(15000)
    log_in(page, web)
    page.goto(f"{web}/healthcheck/{rid}/new")
    page.fill("input[name=medications_1_name]", "阿托伐他汀钙片")
    page.fill("#f-temperature", "36.5")
    with page.expect_navigation():
        page.click("#add-medications")                                  # a round trip: the form comes back
    assert page.input_value("input[name=medications_1_name]") == "阿托伐他汀钙片"
    assert page.input_value("#f-temperature") == "36.5"
    page.fill("input[name=medications_2_name]", "阿司匹林肠溶片")
    with page.expect_navigation():
        page.locator("#rows-medications tbody tr").first.locator("button.remove-row").click()
    assert page.locator("input[name=medications_1_name]").count() == 0
    assert page.input_value("input[name=medications_2_name]") == "阿司匹林肠溶片"
    assert node.store.scalar("SELECT count(*) FROM health_checks") == 0
    part(page, "fieldset.group-history", "48-healthcheck-rows-tablet-no-js")
    page.press("input[name=medications_2_name]", "Enter")               # Enter still saves (and is refused:
    page.wait_for_selector("#form-errors")                               # the self-care assessment is missing)
    assert page.inner_text("#err-selfcare_meal") == "65岁及以上老年人需填写生活自理能力评估"
    assert no_sideways_scroll(page)
    ctx.close()
