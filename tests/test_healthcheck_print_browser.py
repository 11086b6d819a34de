"""The check-day slip and the printed 健康体检表 in real headless Chromium against a real serve,
mosquitto and ingest (docs/health-check.md, "The slip" and "The printout").

Registration prints a slip whose QR code carries the resident id; the BP station and the doctor
scan it into their call field (a USB scanner types like a keyboard, so the test types the slip's
payload) and the BP monitor then measures for exactly that resident. The saved 健康体检表's
printout shows the saved values, laid out by the paper form's sections."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import segno

from edge.core import residents
from tests.conftest import add_device
from tests.test_healthcheck_browser import publish, stored
from tests.test_workbench_browser import browser, log_in, shot, web  # noqa: F401  (fixtures)

playwright_api = pytest.importorskip("playwright.sync_api")


def test_slip_qr_calls_its_resident_and_printout_shows_saved_values(web, browser, broker, env, node):  # noqa: F811
    bp_pw = add_device(env, "station-bp", "bp", broker)
    now = datetime.now(timezone.utc)
    a = residents.create(node.store, {"name": "赵一", "id_number": "11010519491231002X"},
                         division_code="110105001001", now=now, actor="test")
    b = residents.create(node.store, {"name": "钱二", "id_number": "110105195001010012"},
                         division_code="110105001001", now=now, actor="test")
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.set_default_timeout(15000)
    log_in(page, web)
    page.goto(f"{web}/checkday")
    page.select_option("#device-bp", "station-bp")
    page.click("#set-device-bp")
    for id_number, rid in (("11010519491231002X", a), ("110105195001010012", b)):
        page.fill("#f-who", id_number)
        page.click("#register")
        page.wait_for_selector(f"#reg-{rid}")

    page.goto(f"{web}/checkday/slip/{b}")
    assert page.inner_text("#slip-name") == "钱二" and page.inner_text("#slip-seq") == "2"
    payload = page.get_attribute("#slip-qr", "data-payload")
    assert payload == b
    drawn = page.get_attribute("#slip-qr svg path", "d")
    expected = segno.make(b, error="m", micro=False).svg_inline(scale=4, border=4, title=b)
    assert f'd="{drawn}"' in expected                       # the drawing is the QR code of that payload
    assert "心电图" in page.inner_text("#slip-stations")
    page.emulate_media(media="print")
    assert not page.is_visible("#print") and page.is_visible("#slip-qr svg")
    shot(page, "43-checkday-slip")
    page.emulate_media(media="screen")

    page.goto(f"{web}/checkday/bp")
    page.fill("#f-scan", payload)                           # the scanner types the payload, Enter submits
    page.check("#scan-left")
    page.press("#f-scan", "Enter")
    page.wait_for_selector(f"#called-{b}")
    assert page.locator(f"#called-{a}").count() == 0
    publish(broker, "station-bp", bp_pw, [{"bt": time.time(), "n": "8480-6", "u": "mm[Hg]", "v": 141},
                                         {"n": "8462-4", "u": "mm[Hg]", "v": 87},
                                         {"n": "8867-4", "u": "/min", "v": 77}])
    assert stored(node, "station-bp", "8480-6", 141)["resident_id"] == b
    page.click(f"#done-{b}")
    page.wait_for_selector(f"#done-row-{b}")

    page.goto(f"{web}/checkday/doctor")
    page.fill("#f-scan", payload)
    page.press("#f-scan", "Enter")
    page.wait_for_selector("#healthcheck-form")
    assert page.inner_text("#resident-name") == "钱二"
    assert page.input_value("#f-bp_left_sbp") == "141"
    page.fill("#f-temperature", "36.6")
    for item in ("meal", "grooming", "dressing", "toilet", "activity"):
        page.click(f"input[name=selfcare_{item}][value='1']")
    page.click("#save")
    page.wait_for_selector("#saved")

    with page.expect_popup() as popup:
        page.click("#print-link")
    p = popup.value
    p.wait_for_selector("#p-name")
    assert p.inner_text("#p-name") == "钱二"
    assert p.inner_text("#p-bp_left_sbp .value") == "141" and p.inner_text("#p-bp_left_dbp .value") == "87"
    assert "station-bp" in p.inner_text("#p-bp_left_sbp")
    assert p.inner_text("#p-temperature .value") == "36.6"
    assert p.inner_text("#p-selfcare_self .opt.on") == "☑可自理(0～3分)"
    assert p.inner_text("#p-selfcare-total") == "0"
    assert p.inner_text("#p-group-general th.section") == "一般状况"
    p.emulate_media(media="print")
    assert not p.is_visible("#print")
    assert len(p.pdf(format="A4")) > 1000                   # Chromium lays it out on A4
    shot(p, "44-health-check-printout")
