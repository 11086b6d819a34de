"""A check day (体检日) in real headless Chromium against a real `clinic-edge serve`, a real
mosquitto and the real ingest process: three residents registered once (ID number, or the slip's
resident id), then through the BP station (an MQTT monitor, each reading's arm chosen when the
station calls), the height/weight/waist station (an MQTT scale), the urine station (a strip reader
on a real pty, read by the shipped line profile) and the doctor. The township's analyser sends each
resident's blood count, ALT, creatinine and cholesterol over ASTM E1381/E1394 on a second real pty,
matched by the ID number in its P record. Stations run at the same time for different residents;
each resident's 健康体检表 holds exactly their own values, each with its device or analyser.
Prints the figure: actions and seconds for one resident's full check.

The ASTM transmissions follow the record layout of the Sysmex XP-100 and Roche cobas c311 samples in
senaite/senaite.astm src/senaite/astm/tests/data/ (sysmex_xp100.txt, cobas_c311.txt), with a P record
carrying the ID number and this test's values (as tests/test_healthcheck_labs.py)."""
from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timezone

import pytest

from device_drivers.astm.simulator import Analyser
from edge.core import devices, residents
from serial_fixtures import PlugPort
from tests.conftest import add_device, wait_for
from tests.test_workbench_browser import browser, log_in, shot, web  # noqa: F401  (fixtures)

playwright_api = pytest.importorskip("playwright.sync_api")

PEOPLE = {  # name, ID number, BP left, BP right, weight, height, waist, urine lines
    "A": ("赵一", "11010519491231002X", (152, 94, 71), (146, 90, 70), 61.5, 158.0, 86.0,
          [b"PRO  -", b"GLU  -", b"KET  -", b"BLD  -"]),
    "B": ("钱二", "110105195001010012", (124, 76, 66), (128, 78, 65), 70.0, 170.0, 92.5,
          [b"PRO  +-  0.15g/L", b"GLU  2+  14mmol/L", b"KET  -", b"BLD  1+  25Cell/uL"]),
    "C": ("孙三", "440524188001010014", (138, 82, 80), (134, 80, 79), 48.2, 150.5, 74.0,
          [b"PRO  1+  0.3g/L", b"GLU  -", b"KET  +-", b"BLD  3+  200Cell/uL"]),
}

# the township's results: HGB g/dL, WBC and PLT 10*3/uL, ALT U/l, creatinine mg/dL, cholesterol mmol/l
LABS = {"A": (13.2, 6.1, 210, 18, 0.9, 5.1), "B": (12.0, 7.4, 188, 35, 1.1, 4.6), "C": (10.8, 4.9, 156, 12, 1.4, 6.3)}
LAB_CODES = {"WBC": "6690-2", "HGB": "718-7", "PLT": "777-3", "685/": "1742-6", "690/": "2160-0", "798/": "2093-3"}
LAB_FIELDS = ("hb", "wbc", "plt", "alt", "creatinine", "tc")


def lab_transmission(id_number: str, results) -> bytes:
    hgb, wbc, plt, alt, crea, chol = results
    return (f"H|\\^&|||TOWNSHIP-LAB^1|||||host||P|1\r"
            f"P|1||{id_number}\r"
            f"O|1|{id_number[-4:]}||^^^^WBC\\^^^^HGB\\^^^^PLT\\^^^685/\\^^^690/\\^^^798/|R||||||N||||SC\r"
            f"R|1|^^^^WBC^1|{wbc}|10*3/uL||N||F\rR|2|^^^^HGB^1|{hgb}|g/dL||N||F\r"
            f"R|3|^^^^PLT^1|{plt}|10*3/uL||N||F\rR|4|^^^685/|{alt}|U/l||N||F\r"
            f"R|5|^^^690/|{crea}|mg/dL||N||F\rR|6|^^^798/|{chol}|mmol/l||N||F\rL|1|N\r").encode()


def lab_shown(results) -> dict[str, str]:
    """The form's values: g/L, 10^9/L, U/L, umol/L (x 88.40), mmol/L."""
    hgb, wbc, plt, alt, crea, chol = results
    return {"hb": str(round(hgb * 10)), "wbc": f"{wbc:.1f}", "plt": str(plt), "alt": str(alt),
            "creatinine": str(round(crea * 88.40)), "tc": str(round(chol, 2))}


class Actions:
    def __init__(self, page):
        self.page, self.count = page, 0

    def click(self, selector):
        self.count += 1
        self.page.click(selector)

    def fill(self, selector, text):
        self.count += 1
        self.page.fill(selector, text)


def publish(broker, device, password, records):
    out = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-u", device,
                          "-P", password, "-t", f"devices/{device}/readings", "-m", json.dumps(records)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr


def stored(node, device, code, value):
    return wait_for(lambda: node.store.one("SELECT id, resident_id FROM readings WHERE device_id = ? AND code = ?"
                                           " AND value = ?", (device, code, value)), 20,
                    message=f"{device} {code}={value} stored")


@pytest.fixture
def urine_port(broker, node, tmp_path):
    """A strip reader on a pty, configured for the ingest process the `web` fixture starts."""
    port = PlugPort(tmp_path / "ttyURINE")
    port.plug()
    broker.env.update({"CLINIC_EDGE_DRIVERS_LINES_URL": str(port.path),
                       "CLINIC_EDGE_DRIVERS_LINES_PROFILE": "urine-strip-reader-line",
                       "CLINIC_EDGE_DRIVERS_LINES_DEVICE_ID": "urine-reader"})
    devices.add(node.store, "urine-reader", kind="analyser", transport="lines", now=datetime.now(timezone.utc))
    yield port
    port.close()


@pytest.fixture
def lab_port(broker, node, tmp_path, urine_port):
    """The township's analyser on a second pty (ASTM), its test codes in the config file."""
    port = PlugPort(tmp_path / "ttyLAB")
    port.plug()
    cfg = tmp_path / "clinic-edge.toml"
    cfg.write_text('[drivers.astm]\ndevice_id = "township-lab"\n[drivers.astm.codes]\n'
                   + "".join(f'"{k}" = "{v}"\n' for k, v in LAB_CODES.items()), encoding="utf-8")
    broker.env.update({"CLINIC_EDGE_CONFIG": str(cfg), "CLINIC_EDGE_DRIVERS_ASTM_URL": str(port.path)})
    devices.add(node.store, "township-lab", kind="analyser", transport="astm", now=datetime.now(timezone.utc))
    yield port
    port.close()


def test_check_day_three_residents_four_stations(lab_port, urine_port, web, browser, broker, env, node):  # noqa: F811
    bp_pw = add_device(env, "station-bp", "bp", broker)
    scale_pw = add_device(env, "station-scale", "scale", broker)
    ids = {k: residents.create(node.store, {"name": p[0], "id_number": p[1]}, division_code="110105001001",
                               now=datetime.now(timezone.utc), actor="test") for k, p in PEOPLE.items()}
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page.set_default_timeout(15000)
    log_in(page, web)
    page.goto(f"{web}/checkday")
    for station, device in (("bp", "station-bp"), ("body", "station-scale"), ("urine", "urine-reader")):
        page.select_option(f"#device-{station}", device)
        page.click(f"#set-device-{station}")
    shot(page, "40-checkday-stations")
    acts = {k: Actions(page) for k in PEOPLE}
    times = {k: 0.0 for k in PEOPLE}

    def timed(k, fn):
        t = time.monotonic()
        fn(acts[k])
        times[k] += time.monotonic() - t

    for k in PEOPLE:                                   # registration: ID number; C brings the slip
        def reg(a, k=k):
            a.fill("#f-who", ids[k] if k == "C" else PEOPLE[k][1])
            a.click("#register")
            page.wait_for_selector(f"#reg-{ids[k]}")
        timed(k, reg)
    assert page.inner_text("#registered").count("·") == 3

    def bp_station(k):
        def run(a):
            page.goto(f"{web}/checkday/bp")
            for arm, reading in (("left", PEOPLE[k][2]), ("right", PEOPLE[k][3])):
                a.click(f"#call-{ids[k]}-{arm}")
                page.wait_for_selector(f"#called-{ids[k]}")
                s, d, p = reading
                publish(broker, "station-bp", bp_pw, [{"bt": time.time(), "n": "8480-6", "u": "mm[Hg]", "v": s},
                                                     {"n": "8462-4", "u": "mm[Hg]", "v": d},
                                                     {"n": "8867-4", "u": "/min", "v": p}])
                assert stored(node, "station-bp", "8480-6", s)["resident_id"] == ids[k]
            a.click(f"#done-{ids[k]}")
            page.wait_for_selector(f"#done-row-{ids[k]}")
        timed(k, run)

    def body_call(k):
        def run(a):
            page.goto(f"{web}/checkday/body")
            a.click(f"#call-{ids[k]}")
            page.wait_for_selector(f"#called-{ids[k]}")
        timed(k, run)

    def body_measure_and_done(k):
        w, h, waist = PEOPLE[k][4:7]
        publish(broker, "station-scale", scale_pw, [{"bt": time.time(), "n": "29463-7", "u": "kg", "v": w},
                                                   {"n": "8302-2", "u": "cm", "v": h},
                                                   {"n": "8280-0", "u": "cm", "v": waist}])
        assert stored(node, "station-scale", "29463-7", w)["resident_id"] == ids[k]

        def run(a):
            page.goto(f"{web}/checkday/body")
            a.click(f"#done-{ids[k]}")
            page.wait_for_selector(f"#done-row-{ids[k]}")
        timed(k, run)

    def urine(k):
        def run(a):
            page.goto(f"{web}/checkday/urine")
            a.click(f"#call-{ids[k]}")
            page.wait_for_selector(f"#called-{ids[k]}")
        timed(k, run)
        os.write(urine_port.master, b"\r\n".join([b"No.0001", b"LEU  -", *PEOPLE[k][7], b"SG   1.015"]) + b"\r\n")
        wait_for(lambda: node.store.one("SELECT count(*) AS n FROM readings WHERE device_id = 'urine-reader'"
                                        " AND resident_id = ?", (ids[k],))["n"] == 4, 20, message="urine stored")

        def done(a):
            a.click(f"#done-{ids[k]}")
            page.wait_for_selector(f"#done-row-{ids[k]}")
        timed(k, done)

    # A on the scale while B is on the BP monitor: two stations, two residents, at once
    bp_station("A")
    body_call("A")
    bp_station("B")
    body_measure_and_done("A")
    body_call("B")
    bp_station("C")
    body_measure_and_done("B")
    body_call("C")
    body_measure_and_done("C")
    for k in PEOPLE:
        urine(k)
    analyser = Analyser(lab_port.master, reply_timeout=15)     # the township's results come back
    for k in PEOPLE:
        assert analyser.transmit(lab_transmission(PEOPLE[k][1], LABS[k]))
        assert stored(node, "township-lab", "718-7", round(LABS[k][0] * 10))["resident_id"] == ids[k]
    page.goto(f"{web}/checkday/bp")
    assert page.locator("#done li").count() == 3 and page.locator("#waiting li").count() == 0
    shot(page, "41-station-list")

    grade = {b"-": "-", b"+-": "+-", b"1+": "1+", b"2+": "2+", b"3+": "3+"}
    for k, (name, _, left, right, w, h, waist, lines) in PEOPLE.items():
        def doctor(a, k=k):
            page.goto(f"{web}/checkday/doctor")
            a.click(f"#call-{ids[k]}")
            page.wait_for_selector("#healthcheck-form")
        timed(k, doctor)
        assert page.inner_text("#resident-name") == name
        got = {f: page.input_value(f"#f-{f}") for f in ("bp_left_sbp", "bp_left_dbp", "bp_right_sbp", "bp_right_dbp",
                                                        "pulse", "weight", "height", "waist")}
        assert got == {"bp_left_sbp": str(left[0]), "bp_left_dbp": str(left[1]), "bp_right_sbp": str(right[0]),
                       "bp_right_dbp": str(right[1]), "pulse": str(right[2]), "weight": f"{w:.1f}",
                       "height": f"{h:.1f}", "waist": f"{waist:.1f}"}
        urine_codes = [grade[line.split()[1]] for line in lines]
        for field, code in zip(("urine_protein", "urine_glucose", "urine_ketone", "urine_blood"), urine_codes):
            assert page.is_checked(f"input[name={field}][value='{code}']"), field
            assert "urine-reader" in page.inner_text(f"#src-badge-{field}")
        assert {f: page.input_value(f"#f-{f}") for f in LAB_FIELDS} == lab_shown(LABS[k])
        for field in LAB_FIELDS:
            assert "township-lab · astm" in page.inner_text(f"#src-badge-{field}"), field
        assert "station-bp" in page.inner_text("#src-badge-bp_left_sbp")
        assert "station-scale" in page.inner_text("#src-badge-waist")
        if k == "A":
            shot(page, "42-health-check-form")

        def selfcare_and_save(a):
            for item in ("meal", "grooming", "dressing", "toilet", "activity"):
                a.click(f"input[name=selfcare_{item}][value='1']")
            a.click("#save")
            page.wait_for_selector("#saved")
        timed(k, selfcare_and_save)
        assert page.inner_text("#selfcare-band") == "可自理"
        for field in ("bp_left_sbp", "bp_right_dbp", "weight", "waist", "urine_blood", "hb", "creatinine"):
            assert "设备" in page.inner_text(f"#source-{field}"), field
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    rows = node.store.query("SELECT h.resident_id, v.data, v.sources FROM health_checks h JOIN health_check_versions v"
                            " ON v.check_id = h.id")
    assert len(rows) == 3
    for row in rows:
        k = next(k for k, rid in ids.items() if rid == row["resident_id"])
        data, sources = json.loads(row["data"]), json.loads(row["sources"])
        assert (data["bp_left_sbp"], data["bp_right_sbp"], data["weight"]) == (PEOPLE[k][2][0], PEOPLE[k][3][0],
                                                                               PEOPLE[k][4])
        owners = {r["resident_id"] for r in node.store.query(
            f"SELECT resident_id FROM readings WHERE id IN ({','.join('?' * len(sources))})", list(sources.values()))}
        assert owners == {row["resident_id"]} and len(sources) == 18      # BMI is computed, not read
        assert (data["hb"], data["creatinine"]) == (round(LABS[k][0] * 10), round(LABS[k][4] * 88.40))
    print(f"\nFIGURE one resident's check day with devices (A): {acts['A'].count} actions (registration 2, "
          f"BP 3, scale 2, urine 2, doctor 1 + self-care 5 + save 1), {times['A']:.1f} s of clicking in headless "
          f"Chromium, the measurements themselves aside")
