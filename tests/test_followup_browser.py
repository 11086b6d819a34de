"""Real headless Chromium against the real `clinic-edge serve`: a BP reading already attached by a
device, the follow-up form opens pre-filled and is saved in at most 6 user actions, the monthly
report counts it, the XLSX download (opened with openpyxl) holds the page's numbers, and a
correction makes a second version with both in the audit trail. Screenshots go to test-artifacts/."""
from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from conftest import ARTIFACTS, free_port, wait_port
from edge.core import config as config_mod
from edge.core.node import Node
from followup_support import PASSWORD, seed

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MAX_ACTIONS = 6


@pytest.fixture
def server(env):
    node = Node(config_mod.load(env=env))
    seed(node.store)
    node.close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, 20)
        yield f"http://127.0.0.1:{port}", env
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def followup_browser():
    """One Chromium per module; each test gets a fresh context (no cookies carried over) in `page`."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(followup_browser):
    context = followup_browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True,
                                           locale="zh-CN")
    yield context.new_page()
    context.close()


class Actions:
    """Counts what the doctor does: clicks and typed fields."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def click(self, selector: str) -> None:
        self.count += 1
        self.page.click(selector)

    def type(self, selector: str, text: str) -> None:
        self.count += 1
        self.page.fill(selector, text)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"followup-{name}.png"), full_page=True)


def test_routine_followup_in_six_actions_counted_in_report_and_xlsx(server, page):
    base, _env = server
    page.goto(base + "/login")
    page.fill("input[name=username]", "doc")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)

    page.goto(base + "/residents/R1")            # the resident's page, where the BP was just measured
    act = Actions(page)
    act.click("#followup-hypertension")
    page.wait_for_selector("#followup-form")
    assert page.input_value("input[name=sbp]") == "128"
    assert page.input_value("input[name=dbp]") == "82"
    assert page.input_value("input[name=heart_rate]") == "70"
    assert page.is_checked("input[name=classification][value='1']")      # 控制满意, suggested
    assert page.is_checked("input[name=visit_mode][value='1']")
    assert page.input_value("input[name=next_visit_date]") != ""
    assert page.locator(".src").count() >= 3                               # marked as device values
    shot(page, "form-prefilled")
    act.click("input[name=symptoms][value='1']")                            # 无症状
    act.click("#save")
    page.wait_for_selector("#saved")
    assert act.count <= MAX_ACTIONS, act.count
    assert "128/82" in page.inner_text("#p-bp")
    assert page.inner_text("#p-classification").strip().startswith("控制满意")
    shot(page, "saved-paper-form")
    page.emulate_media(media="print")                                    # the paper-form layout
    assert not page.is_visible("header.top") and not page.is_visible("#versions")
    assert not page.is_visible("#void-form") and not page.is_visible("#void-form input[name=reason]")   # 作废
    assert page.is_visible("table.paper-table") and page.is_visible("#p-bp")
    page.pdf(path=str(ARTIFACTS / "followup-paper-form.pdf"), format="A4")
    page.emulate_media(media="screen")

    period = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    page.goto(f"{base}/reports?period={period}")
    assert page.inner_text("#followups-hypertension .total") == "1"
    control = page.locator("#kpi-control_hypertension")
    assert control.locator(".numerator").inner_text() == "1"
    assert control.locator(".denominator").inner_text() == "1"
    assert control.locator(".value").inner_text() == "100.0%"
    shot(page, "monthly-report")
    page.emulate_media(media="print")                                    # the report prints with its head
    head = page.inner_text("#print-head")
    assert "随访工作报表" in head and period in head and "卫生室" in head and period[:4] + "-" in head
    assert not page.is_visible("#period-form")
    page.emulate_media(media="screen")
    with page.expect_download() as dl:
        page.click("#xlsx")
    ws = load_workbook(io.BytesIO(open(dl.value.path(), "rb").read())).active
    sheet = {row[0]: row[1:] for row in ws.iter_rows(min_row=3, values_only=True)}
    assert sheet["管理人群血压控制率"] == (1, 1, 1.0)
    assert sheet["高血压随访人次 - 合计"] == (1, None, 1)
    assert sheet["高血压已管理患者数"][0] == int(page.locator("#kpi-managed_hypertension .numerator").inner_text())

    control.locator(".numerator").click()                                 # the residents behind the number
    assert "张三R1" in page.inner_text("#residents")


def test_correction_makes_a_new_version_and_the_audit_shows_both(server, page):
    base, _env = server
    page.goto(base + "/login")
    page.fill("input[name=username]", "doc")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(base + "/followup/R1/hypertension/new")
    page.check("input[name=danger_signs][value='orthopnoea']")          # a danger sign: urgent referral
    playwright.expect(page.locator("input[name=next_step][value='4']")).to_be_checked()   # the server's rules
    page.uncheck("input[name=danger_signs][value='orthopnoea']")
    page.click("input[name=next_step][value='1']")                      # the doctor overrides
    page.click("#save")
    page.wait_for_selector("#saved")
    page.click("#correct")
    page.fill("input[name=dbp]", "84")
    page.click("#save")
    assert "更正原因" in page.inner_text("#err-reason")                   # refused without a reason
    page.fill("input[name=reason]", "舒张压看错")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert "128/84" in page.inner_text("#p-bp")
    assert page.locator("#versions tbody tr").count() == 2
    audit = page.inner_text("#audit")
    assert "新建随访" in audit and "更正随访" in audit and "82 → 84" in audit
    assert "followup." not in audit                                      # human names, not the log's
    shot(page, "correction-audit")
    page.click("#versions tbody tr:first-child a")
    assert "128/82" in page.inner_text("#p-bp")
