"""Every page a doctor uses, in real headless Chromium, in both languages and at 1366x768 (clinic PC)
and 800x1280 (tablet): in English no Chinese character is visible except resident data (names,
the clinic's name, the 中文 link); in Chinese no English word is visible except units, codes and
data (device ids, user names); nothing is wider than the screen (body and main do not scroll sideways)."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest

from edge.core import config as config_mod
from edge.core import devices
from edge.core.followup import records
from edge.core.ingest import ingest
from edge.core.node import Node
from edge.core.reading import Reading
from tests.followup_support import PASSWORD, seed
from tests.test_followup_browser import CHROMIUM_ARGS
from tests.conftest import free_port, wait_port

playwright = pytest.importorskip("playwright.sync_api")

CJK = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3000-\u303f]")
WORD = re.compile(r"[A-Za-z][A-Za-z]+")
DATA_ZH = ("张三R1", "示范村卫生室", "中文", "王医生")                        # resident data, clinic, the 中文 link
# in Chinese: units, codes, file formats, product and protocol names, and the English link
ALLOWED_EN = {"mmHg", "mmol", "kg", "cm", "min", "mg", "HbA1c", "SpO2", "BMI", "CSV", "XLSX", "English",
              "clinic", "edge", "LOINC", "ID", "YYYY", "MM", "DD", "Qn", "doc", "bp", "R1", "mqtt", "demo",
              "QoS", "SenML", "MQTT", "URL", "CODE", "hub", "enroll", "code", "s", "v",
              "zs", "dL", "mol", "U", "L", "g"}                   # pinyin initials; lab units (μmol/L, U/L, g/L)                                                       # pinyin initials, the search example
VIEWPORTS = {"pc": {"width": 1366, "height": 768}, "tablet": {"width": 800, "height": 1280}}

# Visible text (what a person reads: not <script>/<style>, not hidden elements) and the widest
# overflow of the page, body and main.
VISIBLE_TEXT = """() => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const n = walk.currentNode, e = n.parentElement;
    if (!n.textContent.trim() || !e || e.closest('script,style,datalist,option:not(:checked)')) continue;
    if (!e.checkVisibility || !e.checkVisibility()) continue;
    out.push(n.textContent.trim());
  }
  document.querySelectorAll('input[placeholder]').forEach(i => { if (i.checkVisibility()) out.push(i.placeholder); });
  document.querySelectorAll('input[type=submit],button').forEach(b => { if (b.checkVisibility()) out.push(b.value || ''); });
  return out;
}"""
OVERFLOW = """() => {
  const over = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) over.push('page ' + doc.scrollWidth + '>' + window.innerWidth);
  for (const e of [document.body, document.querySelector('main')]) {
    if (e && e.scrollWidth > e.clientWidth + 1) over.push(e.tagName + ' ' + e.scrollWidth + '>' + e.clientWidth);
  }
  return over;
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One node for every page: a managed resident with a measured visit, a saved follow-up, a
    reading in the inbox; a real `clinic-edge serve`."""
    import subprocess
    import sys

    data = tmp_path_factory.mktemp("pages")
    env = {**__import__("os").environ, "CLINIC_EDGE_DATA": str(data)}
    env.pop("CLINIC_EDGE_CONFIG", None)
    node = Node(config_mod.load(env=env))
    now = datetime.now(timezone.utc)
    seed(node.store, now=now)
    saved = records.save(node.store, resident_id="R1", form="hypertension", actor="doc", at=now,
                         values={"visit_date": date.today().isoformat(), "visit_mode": "1", "sbp": 150,
                                 "dbp": 95, "classification": "2", "next_step": "2", "smoking": 5,
                                 "next_visit_date": "2099-01-01", "symptoms": ["1"]})
    records.enrol(node.store, resident_id="R1", disease="diabetes", since=date(2024, 1, 1), actor="t", at=now)
    devices.add(node.store, "clinic-bp", kind="bp", now=now)
    from edge.core import measuring
    measuring.stop(node.store, now=now, actor="doc")
    ingest(node.store, [Reading("clinic-bp", "8480-6", 141, "mm[Hg]", "mqtt", device_time=now),
                        Reading("clinic-bp", "8462-4", 91, "mm[Hg]", "mqtt", device_time=now)])
    node.close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, 20)
        yield f"http://127.0.0.1:{port}", saved.id
    finally:
        proc.terminate()
        proc.wait(10)


def pages(followup_id: str) -> dict[str, str]:
    return {"workbench": "/", "new resident": "/residents/new", "resident": "/residents/R1",
            "edit resident": "/residents/R1/edit", "inbox": "/inbox", "readings": "/readings",
            "follow-ups": "/followup/R1", "hypertension form": "/followup/R1/hypertension/new",
            "diabetes form": "/followup/R1/diabetes/new", "saved follow-up": f"/followups/{followup_id}",
            "worklist": "/worklist", "report": "/reports", "sync": "/sync",
            "health check form": "/healthcheck/R1/new", "check day": "/checkday", "BP station": "/checkday/bp",
            "elderly": "/elderly"}


@pytest.fixture(scope="module")
def chromium():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def untranslated(texts: list[str], lang: str) -> list[str]:
    bad = []
    for t in texts:
        if lang == "en":
            rest = t
            for d in DATA_ZH:
                rest = rest.replace(d, "")
            if CJK.search(rest):
                bad.append(t)
        else:
            words = [w for w in WORD.findall(t) if w not in ALLOWED_EN]
            if words:
                bad.append(f"{t!r} ({', '.join(words)})")
    return bad


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_doctor_page_is_translated_and_fits_the_screen(site, chromium, lang, viewport):
    base, followup_id = site
    ctx = chromium.new_context(viewport=VIEWPORTS[viewport], locale="zh-CN")
    page = ctx.new_page()
    page.set_default_timeout(15000)
    page.goto(base + "/login")
    page.fill("input[name=username]", "doc")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(f"{base}/lang/{lang}?next=/")
    problems = {}
    for name, path in pages(followup_id).items():
        resp = page.goto(base + path)
        assert resp.ok, f"{name}: {resp.status}"
        texts = page.evaluate(VISIBLE_TEXT)
        assert ("Workbench" if lang == "en" else "工作台") in texts, f"{name}: not in {lang}"   # the check is live
        bad = untranslated(texts, lang)
        over = page.evaluate(OVERFLOW)
        if bad or over:
            problems[name] = {"untranslated": bad[:8], "overflow": over}
    ctx.close()
    assert not problems, problems
