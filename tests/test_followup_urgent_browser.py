"""Urgent values are loud while typing (real headless Chromium, real `clinic-edge serve`): the page
asks the server's rules, so a BP typed at 185/115, a danger sign or a low glucose shows 建议紧急转诊
before anything is saved; an urgent referral without its reason and facility is refused; the next
contact records whether the patient arrived (到位/未到位)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from edge.core import config as config_mod
from edge.core.followup import records
from edge.core.node import Node
from tests.test_followup_browser import followup_browser, page, server  # noqa: F401  (fixtures)
from tests.followup_support import PASSWORD

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect


def log_in(page, base):
    page.goto(base + "/login")
    page.fill("input[name=username]", "doc")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def count_followups(env) -> int:
    node = Node(config_mod.load(env=env))
    try:
        return node.store.scalar("SELECT count(*) FROM followups")
    finally:
        node.close()


def test_typed_urgent_bp_alerts_before_saving_and_needs_reason_and_facility(server, page):  # noqa: F811
    base, env = server
    log_in(page, base)
    page.goto(base + "/followup/R1/hypertension/new")
    assert page.is_hidden("#urgent-alert")                     # 128/82 from the device: nothing urgent
    page.fill("input[name=sbp]", "185")
    page.fill("input[name=dbp]", "115")
    expect(page.locator("#urgent-alert")).to_be_visible(timeout=5000)
    assert "建议紧急转诊" in page.inner_text("#urgent-alert") and "180" in page.inner_text("#urgent-alert")
    expect(page.locator("input[name=next_step][value='4']")).to_be_checked()
    assert "/new" in page.url and count_followups(env) == 0     # loud before any save
    page.fill("input[name=sbp]", "150")
    page.fill("input[name=dbp]", "95")
    expect(page.locator("#urgent-alert")).to_be_hidden(timeout=5000)
    page.check("input[name=danger_signs][value='vision']")     # a danger sign alone is urgent too
    expect(page.locator("#urgent-alert")).to_be_visible(timeout=5000)
    assert "视力模糊" in page.inner_text("#urgent-reasons")
    page.click("input[name=symptoms][value='1']")
    page.click("#save")
    assert "转诊原因" in page.inner_text("#err-referral_reason")
    assert "转诊机构" in page.inner_text("#err-referral_facility")
    assert count_followups(env) == 0
    page.fill("input[name=referral_reason]", "视力模糊、眼痛")
    page.fill("input[name=referral_facility]", "县医院眼科")
    page.click("#save")
    page.wait_for_selector("#saved")

    page.goto(base + "/followup/R1/hypertension/new")          # the next contact
    assert page.is_visible("#referral-pending")
    page.fill("input[name=sbp]", "132")
    page.fill("input[name=dbp]", "84")
    page.click("input[name=symptoms][value='1']")
    page.click("#save")
    assert "是否到位" in page.inner_text("#err-referral_outcome")
    page.click("input[name=referral_outcome][value='2']")      # 未到位
    page.click("#save")
    page.wait_for_selector("#saved")
    assert "未到位" in page.inner_text("#p-referral_outcome")
    assert count_followups(env) == 2


def test_typed_low_glucose_alerts_live_and_is_not_controlled(server, page):  # noqa: F811
    base, env = server
    node = Node(config_mod.load(env=env))
    records.enrol(node.store, resident_id="R1", disease="diabetes", since=date(2024, 1, 1), actor="t",
                  at=datetime.now(timezone.utc))
    node.close()
    log_in(page, base)
    page.goto(base + "/followup/R1/diabetes/new")
    page.fill("input[name=fbg]", "3.5")
    expect(page.locator("#urgent-alert")).to_be_visible(timeout=5000)
    assert "3.9" in page.inner_text("#urgent-reasons")
    expect(page.locator("input[name=classification][value='2']")).to_be_checked()   # not 控制满意
