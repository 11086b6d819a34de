"""The county view (issue 19 item 3) on a real hub database: the county row is the sum of the
clinics' own reports (rates as sum of numerators over sum of denominators, hand-computed below),
a clinic that did not report shows as missing, a corrected report counts once, a report whose
figures do not add up is shown as unreadable and not summed; the CSV/XLSX export carry the same
numbers, served by a real `hub serve`."""
from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta

import pytest

from edge.reports.population import month, quarter
from sync.hub import county
from sync.hub.storage import HubStore
from county_support import T0, add_nodes, put, report_payload
from sync_fixtures import Hub, hub_database  # noqa: F401 - fixtures

SEPT = month(2026, 9)


def seed(store) -> None:
    add_nodes(store, "node-a", "node-b", "node-c", "node-d")
    for node, town, name in (("node-a", "城关镇", "东村卫生室"), ("node-b", "城关镇", "西村卫生室"),
                             ("node-c", "河口乡", "南村卫生室"), ("node-d", "河口乡", "北村卫生室")):
        county.set_place(store, node, town, name, actor="it", now=T0)
    # node-a first sent a report it then corrected: only the later one counts
    put(store, "node-a", "report", "rep-a-old", report_payload(SEPT, "rep-a-old", (99, 99, 99), (9, 9, 9)))
    put(store, "node-a", "report", "rep-a", report_payload(SEPT, "rep-a", (10, 6, 5), (4, 2, 1)),
        at=T0 + timedelta(hours=1))
    put(store, "node-b", "report", "rep-b", report_payload(SEPT, "rep-b", (20, 15, 8), (6, 6, 3)))
    put(store, "node-c", "report", "rep-c", report_payload(SEPT, "rep-c", (5, 1, 4), (0, 0, 0)))
    # node-d reported August only
    put(store, "node-d", "report", "rep-d8", report_payload(month(2026, 8), "rep-d8", (7, 7, 7), (1, 1, 1)))


@pytest.fixture
def store(tmp_path):
    s = HubStore(f"sqlite:///{tmp_path / 'hub.db'}")
    yield s
    s.engine.dispose()


@pytest.fixture
def any_store(hub_database):
    """The hub's database on SQLite and on the real PostgreSQL server (its scale path)."""
    s = HubStore(hub_database, pool_size=1)
    yield s
    s.engine.dispose()


def by(t, level, key):
    return next(r for r in t.rows if r.level == level and (r.node == key or r.name == key))


def test_three_clinics_reports_sum_to_the_county_row(any_store):
    store = any_store
    seed(store)
    t = county.table(store, "2026-09")
    c = t.county
    # 10+20+5 managed; standard 6+15+1 = 22 of 35 (62.9%), not the mean of 60%, 75%, 20% (51.7%)
    assert c.figures == {"managed_hypertension": (35, None), "standard_hypertension": (22, 35),
                         "control_hypertension": (17, 35), "managed_diabetes": (10, None),
                         "standard_diabetes": (8, 10), "control_diabetes": (4, 10)}
    assert round(county.rate(c.figures["standard_hypertension"]), 4) == 0.6286
    assert (c.reported, c.clinics) == (3, 4)
    town = by(t, "township", "城关镇")
    assert town.figures == {"managed_hypertension": (30, None), "standard_hypertension": (21, 30),
                            "control_hypertension": (13, 30), "managed_diabetes": (10, None),
                            "standard_diabetes": (8, 10), "control_diabetes": (4, 10)}
    assert by(t, "clinic", "node-a").figures["managed_hypertension"] == (10, None)   # the corrected one


def test_a_clinic_that_did_not_report_shows_as_missing(store):
    seed(store)
    t = county.table(store, "2026-09")
    assert [(r.node, r.problem) for r in t.missing] == [("node-d", "未上报 not reported")]
    assert (by(t, "township", "河口乡").reported, by(t, "township", "河口乡").clinics) == (1, 2)
    assert [r.node for r in county.table(store, "2026-08").missing] == ["node-a", "node-b", "node-c"]


def test_a_report_whose_figures_do_not_add_up_is_shown_and_not_summed(store):
    seed(store)
    add_nodes(store, "node-e")
    bad = report_payload(SEPT, "rep-e", (3, 2, 1), (1, 1, 1))
    bad["indicators"]["control_hypertension"]["numerator"] = 9
    put(store, "node-e", "report", "rep-e", bad)
    t = county.table(store, "2026-09")
    e = by(t, "clinic", "node-e")
    assert e.figures is None
    assert e.problem == ("报告无法读取 report unreadable: control_hypertension: numerator 9 is above the "
                         "denominator 3")
    assert e.township == county.NO_TOWNSHIP
    assert t.county.figures["managed_hypertension"] == (35, None)


def test_quarterly_reports_and_the_trend(store):
    seed(store)
    q3 = quarter(2026, 3)
    put(store, "node-a", "report", "rep-aq", report_payload(q3, "rep-aq", (10, 4, 4), (4, 1, 1)))
    put(store, "node-b", "report", "rep-bq", report_payload(q3, "rep-bq", (20, 10, 10), (6, 3, 3)))
    assert county.table(store, "2026-Q3").county.figures["standard_hypertension"] == (14, 30)
    trend = county.trend(store, "month")
    assert [(r.name, r.reported, r.figures["managed_hypertension"][0]) for r in trend] == \
        [("2026-08", 1, 7), ("2026-09", 3, 35)]
    mine = county.trend(store, "month", node="node-d")
    assert [(r.name, r.reported) for r in mine] == [("2026-08", 1), ("2026-09", 0)]


def test_a_period_that_is_not_one_is_refused(store):
    from edge.core.errors import ValidationError

    with pytest.raises(ValidationError, match="a period is YYYY-MM or YYYY-Qn"):
        county.table(store, "2026-13")


@pytest.fixture
def hub(tmp_path, env):
    d = tmp_path / "hubdata"
    d.mkdir()
    h = Hub(env, d, f"sqlite:///{tmp_path / 'served.db'}").start()
    yield h
    h.stop()


def download(browser, path: str) -> bytes:
    with browser.opener.open(browser.url + path, timeout=10) as r:
        return r.read()


def test_the_served_export_has_the_county_row_in_csv_and_xlsx(hub):
    seed(hub.store())
    b = hub.browser("zhang", "viewer")
    status, page = b.get("/county?period=2026-09")
    assert status == 200 and 'data-level="county"' in page and "62.9%" in page and "(22/35)" in page
    rows = list(csv.reader(io.StringIO(download(b, "/county/export.csv?period=2026-09").decode("utf-8-sig"))))
    county_row = next(r for r in rows if r[0] == "全县 county")
    assert county_row[5:] == ["3/4", "35", "22", "35", "0.6286", "17", "35", "0.4857",
                              "10", "8", "10", "0.8", "4", "10", "0.4"]
    d_row = next(r for r in rows[2:] if r[3] == "node-d")
    assert d_row[4] == "未上报 not reported" and d_row[5:] == ["0/1"] + [""] * 14
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(download(b, "/county/export.xlsx?period=2026-09"))).active
    values = [[c.value for c in r] for r in ws.iter_rows()]
    assert next(v for v in values if v[0] == "全县 county")[6:9] == [35, 22, 35]
    status, _ = b.get("/county/deidentified.csv")
    assert status == 403                                    # a viewer does not get the research export



def test_the_served_county_page_shows_a_report_that_arrives_after_it_was_viewed(hub):
    """The page keeps the parsed reports between views (docs/county.md): a new one counts at once."""
    seed(hub.store())
    b = hub.browser("zhang", "viewer")
    status, page = b.get("/county?period=2026-09")
    assert status == 200 and "62.9%" in page and "(22/35)" in page and "未上报 not reported" in page
    assert b.get("/county?period=2026-09")[1] == page                   # a second view: the same page
    put(hub.store(), "node-d", "report", "rep-d9", report_payload(SEPT, "rep-d9", (7, 7, 7), (1, 1, 1)),
        at=T0 + timedelta(hours=2))
    status, page = b.get("/county?period=2026-09")
    assert status == 200 and "69.0%" in page and "(29/42)" in page and "未上报 not reported" not in page
    status, page = b.get("/county/clinic/node-d")
    assert status == 200 and "2026-09" in page


def test_the_reports_are_parsed_once_until_a_new_one_arrives(store):
    seed(store)
    first = county.clinic_reports(store)
    assert county.clinic_reports(store) is first                         # nothing new: not read again
    assert county.table(store, "2026-09", first).county.figures["standard_hypertension"] == (22, 35)
    put(store, "node-c", "report", "rep-c2", report_payload(SEPT, "rep-c2", (5, 5, 4), (0, 0, 0)),
        at=T0 + timedelta(hours=2))                                   # node-c corrects its September
    again = county.clinic_reports(store)
    assert again is not first and again[0][("node-c", "2026-09")].record_id == "rep-c2"
    assert county.table(store, "2026-09").county.figures["standard_hypertension"] == (26, 35)

def test_the_township_is_set_by_an_admin_on_the_page_and_from_the_command_line(hub):
    from conftest import clinic_edge

    seed(hub.store())
    viewer = hub.browser("li", "viewer")
    status, _ = viewer.post("/county/places", {"node": "node-d", "township": "城关镇"}, token=viewer.csrf("/county"))
    assert status == 403
    admin = hub.browser("it", "admin")
    status, page = admin.post("/county/places", {"node": "node-d", "township": "城关镇", "clinic": "北村卫生室"},
                              token=admin.csrf("/county"))
    assert status == 200 and 'data-township="城关镇"' in page
    assert county.all_places(hub.store())["node-d"].township == "城关镇"
    status, page = admin.post("/county/places", {"node": "node-d", "township": " "}, token=admin.csrf("/county"))
    assert status == 400 and "a township name has 1-64 characters" in page
    done = clinic_edge(hub.env, "hub", "county", "township", "node-d", "河口乡")
    assert done.stdout == "node-d: 北村卫生室, 河口乡\n"
    refused = clinic_edge(hub.env, "hub", "county", "township", "node-x", "河口乡", check=False)
    assert refused.returncode == 2 and "no node named node-x on this hub" in refused.stderr
    out = hub.data / "sept.csv"
    done = clinic_edge(hub.env, "hub", "county", "table", "2026-09", "--out", str(out))
    assert done.stdout == f"county table 2026-09: 3 of 4 clinics reported; 1 missing; written to {out}\n"
    assert "全县 county,,全县 county,,ok,3/4,35,22,35,0.6286" in out.read_text(encoding="utf-8-sig")


def test_the_hub_starts_without_openpyxl_and_skips_annual_reports(store, tmp_path):
    import subprocess
    import sys

    from edge.reports.population import year

    probe = ("import sys; from sync.hub.app import create_app; from sync.hub.service import Hub; "
             "from sync.hub.storage import HubStore; from sync import signing; "
             f"create_app(Hub(HubStore('sqlite:///{tmp_path / 'probe.db'}'), signing.new_key())); "
             "print('openpyxl' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"
    seed(store)
    put(store, "node-a", "report", "rep-a-y", report_payload(year(2026), "rep-a-y", (1, 1, 1), (1, 1, 1)))
    found, bad = county.clinic_reports(store)
    assert sorted(p for _n, p in found) == ["2026-08", "2026-09", "2026-09", "2026-09"] and bad == []
