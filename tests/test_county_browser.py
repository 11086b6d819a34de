"""Real headless Chromium against a real `hub serve`: county staff (the 基层卫生科's account) log in
and land on the county table, in Chinese, with the county row the clinics' reports add up to, the
clinic that has not reported, and the drill-down to one clinic. Screenshots go to test-artifacts/."""
from __future__ import annotations

import pytest

from conftest import ARTIFACTS
from sync_fixtures import Hub
from test_county_view import seed
from test_followup_browser import CHROMIUM_ARGS

playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def hub(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, f"sqlite:///{tmp_path / 'hub.db'}", tls=False).start()
    yield h
    h.stop()


def test_county_staff_log_in_and_see_the_county_table_in_chinese(hub):
    seed(hub.store())
    password = hub.add_user("chen", "county")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN").new_page()
        page.goto(hub.url + "/")
        page.fill("input[name=username]", "chen")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url("**/county")
        assert page.locator("h1").inner_text().startswith("县域慢病管理报表")
        table = page.locator("table.county-table")
        assert table.get_attribute("data-period") == "2026-09"
        head = table.locator("tr").first.inner_text()
        assert "高血压规范管理率" in head and "血糖控制率" in head and "乡镇" in head
        row = table.locator("tr[data-level=county]")
        assert row.locator("td[data-key=standard_hypertension]").inner_text() == "62.9% (22/35)"
        assert row.locator("td[data-key=managed_diabetes]").inner_text() == "10"
        assert row.locator("td.status").inner_text() == "3/4"
        assert table.locator("tr[data-node=node-d] td.status").inner_text() == "未上报 not reported"
        assert page.locator("ul.missing li").all_inner_texts() == ["河口乡 · 北村卫生室: 未上报 not reported"]
        assert page.locator("text=去标识化导出").count() == 1          # county staff may take it
        page.screenshot(path=str(ARTIFACTS / "county-view.png"), full_page=True)
        page.click("text=东村卫生室")
        page.wait_for_url("**/county/clinic/node-a*")
        trend = page.locator("table.clinic-trend tr[data-period='2026-09'] td[data-key=standard_hypertension]")
        assert trend.inner_text() == "60.0% (6/10)"
        browser.close()
