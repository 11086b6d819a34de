"""The workbench in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright),
against a real `clinic-edge serve`, a real mosquitto and the real ingest process.
Screenshots go to test-artifacts/workbench/."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from edge.core import accounts
from tests.conftest import ARTIFACTS, add_device, free_port, wait_for, wait_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = ARTIFACTS / "workbench"
PASSWORD = "doctor-pass-1"

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def web(broker, ingest_proc, node):
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is not installed: run the README's test command (./run test), which installs it")
    accounts.add(node.store, "doc", PASSWORD, display_name="王医生", now=datetime.now(timezone.utc))
    ingest_proc()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--listen", f"127.0.0.1:{port}"],
                            env=broker.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port, 15)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    """One Chromium per module: each test opens its own page (a fresh context: no cookies carried over)."""
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def publish_bp(broker, password, sys_, dia, pulse=72):
    payload = json.dumps([{"bt": time.time(), "n": "8480-6", "u": "mm[Hg]", "v": sys_},
                          {"n": "8462-4", "u": "mm[Hg]", "v": dia}, {"n": "pulse", "u": "beat/min", "v": pulse}])
    out = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-u", "clinic-bp",
                          "-P", password, "-t", "devices/clinic-bp/readings", "-m", payload],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr


def log_in(page, base):
    page.goto(base + "/")
    page.fill("input[name=username]", "doc")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#q")


def no_sideways_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def register(page, base, name, id_number, phone=""):
    page.goto(base + "/residents/new")
    page.fill("#f-name", name)
    page.fill("#f-id_number", id_number)
    if phone:
        page.fill("#f-phone", phone)
    page.click("form.resident-form button[type=submit]")


def test_doctor_registers_finds_measures_and_assigns(web, browser, broker, env):
    bp_password = add_device(env, "clinic-bp", "bp", broker)
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.set_default_timeout(10000)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    log_in(page, web)
    assert page.is_visible("#q") and page.evaluate("document.activeElement.id") == "q"
    shot(page, "01-workbench")

    register(page, web, "张三", "11010519491231002X", "13800138000")
    page.wait_for_selector("#resident-name")
    assert page.inner_text("#resident-name") == "张三"
    assert "1949-12-31" in page.content() and "11010500100100001" in page.content()
    shot(page, "02-resident-registered")

    register(page, web, "李四", "360426199101010072")
    assert "校验位不正确" in page.inner_text("#err-id_number")
    shot(page, "03-invalid-id-number")

    register(page, web, "张三丰", "11010519491231002X")
    assert "已建档" in page.inner_text("#err-id_number")
    shot(page, "04-duplicate-id-number")
    page.click("#duplicate-link")
    page.wait_for_selector("#resident-name")
    assert page.inner_text("#resident-name") == "张三"

    page.goto(web + "/")
    page.fill("#q", "zs")
    page.wait_for_selector("#results li a")
    assert "张三" in page.inner_text("#results")
    shot(page, "05-search-zs")
    page.click("#results li a")
    page.wait_for_selector("#resident-name")

    page.click("#measuring-start")
    page.wait_for_selector("#measuring-banner")
    page.evaluate("window.__notReloaded = true")
    publish_bp(broker, bp_password, 152, 94)
    playwright_api.expect(page.locator("#v-bp")).to_have_text("152/94", timeout=15000)
    assert page.evaluate("window.__notReloaded === true")            # it arrived without a reload
    assert "152" in page.inner_text("#reading-rows")
    assert page.inner_text("#v-8867-4") == "72"
    assert no_sideways_scroll(page)
    shot(page, "06-live-reading-1366x768")

    page.click("#measuring-stop")
    page.wait_for_selector("#measuring-start")
    publish_bp(broker, bp_password, 138, 86, 70)
    page.goto(web + "/inbox")

    def in_inbox():
        if page.query_selector(".inbox-item"):
            return True
        page.reload()
        return False

    wait_for(in_inbox, timeout=15, interval=0.2, message="the reading in the inbox")
    assert "138" in page.inner_text(".inbox-item")
    shot(page, "07-inbox")
    page.fill(".inbox-item input.pick", "zs")
    page.wait_for_selector(".inbox-item .pick-results button")
    page.click(".inbox-item .pick-results button")
    page.wait_for_selector(".flash-ok")
    assert "张三" in page.inner_text(".flash-ok") and not page.query_selector(".inbox-item")
    shot(page, "08-inbox-assigned")

    page.goto(web + "/")
    page.fill("#q", "8000")              # the last digits of the phone number
    page.wait_for_selector("#results li a")
    page.click("#results li a")
    page.wait_for_selector("#resident-name")
    assert "138" in page.inner_text("#reading-rows") and "152" in page.inner_text("#reading-rows")
    assert page.query_selector("svg.chart polyline.sys") is not None
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors

    tablet = browser.new_page(viewport={"width": 800, "height": 1280}, locale="zh-CN", is_mobile=True,
                              has_touch=True)
    tablet.set_default_timeout(10000)
    log_in(tablet, web)
    tablet.goto(page.url)
    tablet.wait_for_selector("#resident-name")
    assert no_sideways_scroll(tablet)
    assert tablet.is_visible("#measuring-start")
    shot(tablet, "09-resident-tablet-800x1280")
