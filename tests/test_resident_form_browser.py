"""The resident form as a doctor types into it (real headless Chromium, keys one by one): an ID
number typed in groups with spaces is kept whole (spaces are dropped on the server, never cut at 18
characters by the page), and a 51-character name is refused with a message, never cut silently."""
from __future__ import annotations

import pytest

from tests.test_followup_browser import followup_browser, page, server  # noqa: F401  (fixtures)
from tests.test_followup_urgent_browser import log_in

playwright = pytest.importorskip("playwright.sync_api")


def test_id_number_in_groups_is_kept_whole_and_a_long_name_is_refused(server, page):  # noqa: F811
    base, _env = server
    log_in(page, base)
    page.goto(base + "/residents/new")
    page.locator("#f-name").press_sequentially("赵" * 51)
    page.locator("#f-id_number").press_sequentially("110105 19491231 002X")
    assert page.input_value("#f-id_number") == "110105 19491231 002X"        # not cut at 18
    assert len(page.input_value("#f-name")) == 51                            # not cut silently
    page.click("form.resident-form button[type=submit]")
    assert "50" in page.inner_text("#err-name")
    page.fill("#f-name", "赵六")
    page.click("form.resident-form button[type=submit]")
    page.wait_for_selector("#resident-name")
    assert "11010519491231002X" in page.inner_text(".resident-head")
