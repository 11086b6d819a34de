"""The 健康体检表 through Flask's test client on a real node: opened pre-filled from the resident's
own readings with each value's device shown, saved as opened plus the self-care assessment, the
record showing which value came from which device and which was typed."""
from datetime import datetime, timezone

from edge.core import devices, measuring
from edge.core.ingest import ingest
from edge.core.reading import Reading
from followup_support import app_client, form_fields, seed  # noqa: F401 (fixture)


def submit(client, url, html, **changes):
    data = form_fields(html, "healthcheck-form")
    for k, v in changes.items():
        data[k] = v if isinstance(v, list) else [v]
    return client.post(url, data=data)


def measure(store, rid, device, pairs, arm=None, kind="bp"):
    now = datetime.now(timezone.utc)
    if devices.get(store, device) is None:
        devices.add(store, device, kind=kind, transport="mqtt", now=now)
    measuring.start(store, rid, now=now, actor="doc", switch=True, arm=arm)
    ingest(store, [Reading(device, code, value, unit, "mqtt", device_time=now)
                   for code, value, unit in pairs])


def test_form_opens_with_device_values_and_saves_their_sources(app_client):
    node, client = app_client
    seed(node.store, rid="R2", birth="1950-01-01")
    measure(node.store, "R2", "bp-station", [("8480-6", 146, "mm[Hg]"), ("8462-4", 90, "mm[Hg]"),
                                              ("8867-4", 77, "/min")], arm="left")
    measure(node.store, "R2", "bp-station", [("8480-6", 139, "mm[Hg]"), ("8462-4", 85, "mm[Hg]")], arm="right")
    measure(node.store, "R2", "scale-1", [("29463-7", 60, "kg"), ("8302-2", 155, "cm")], kind="scale")
    url = "/healthcheck/R2/new"
    page = client.get(url)
    f = form_fields(page.text, "healthcheck-form")
    assert (f["bp_left_sbp"], f["bp_left_dbp"], f["bp_right_sbp"], f["bp_right_dbp"]) == (
        ["146"], ["90"], ["139"], ["85"])
    assert (f["pulse"], f["weight"], f["height"], f["bmi"]) == (["77"], ["60.0"], ["155.0"], ["25.0"])
    assert 'id="src-badge-bp_right_sbp"' in page.text and "bp-station" in page.text
    r = submit(client, url, page.text, weight="61", selfcare_meal="1", selfcare_grooming="1",
               selfcare_dressing="1", selfcare_toilet="1", selfcare_activity="2")
    assert r.status_code == 303, r.text[:2000]
    shown = client.get(r.headers["Location"]).text
    assert 'id="selfcare-total">1<' in shown and 'id="selfcare-band">可自理<' in shown
    assert 'id="source-bp_left_sbp">设备 bp-station' in shown
    assert 'id="source-weight">手工录入<' in shown
    row = node.store.one("SELECT kind FROM outbox WHERE kind = 'health_check'")
    assert row == {"kind": "health_check"}


def test_a_wrong_value_gets_its_message_and_nothing_is_saved(app_client):
    node, client = app_client
    seed(node.store, rid="R2", birth="1950-01-01")
    page = client.get("/healthcheck/R2/new")
    r = submit(client, "/healthcheck/R2/new", page.text, temperature="45")
    assert r.status_code == 422
    assert 'id="err-temperature">体温应在34–43℃之间<' in r.text
    assert 'id="err-selfcare_meal">65岁及以上老年人需填写生活自理能力评估<' in r.text
    assert node.store.one("SELECT count(*) AS n FROM health_checks") == {"n": 0}


def test_worklist_lists_the_65_plus_not_checked_and_the_rate(app_client):
    node, client = app_client                      # R1 (born 1955) is 65+, not checked
    seed(node.store, rid="R2", birth="1990-01-01")
    page = client.get("/elderly?year=2026").text
    assert 'id="todo-R1"' in page and 'id="todo-R2"' not in page
    assert "0 / 1" in page


def test_the_report_shows_the_elderly_rate(app_client):
    node, client = app_client                      # R1 (born 1955): 65+, not checked
    page = client.get("/reports?period=2026").text
    assert 'id="kpi-elderly"' in page and "老年人健康管理率" in page
