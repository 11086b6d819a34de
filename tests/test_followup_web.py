"""The follow-up pages through Flask's test client, logged in as a doctor, on a real store:
pre-filled form submitted as it opened, a message next to a wrong field, a correction as a new
version with both in the audit, the report counting it, the exports and the worklist."""
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from edge.core import config as config_mod, outbox
from edge.core.node import Node
from edge.web import create_app
from followup_support import app_client, csrf, form_fields, login, seed  # noqa: F401 (fixture)


def submit(client, url, html, **changes):
    data = form_fields(html)
    for k, v in changes.items():
        data[k] = v if isinstance(v, list) else [v]
    return client.post(url, data=data)


def test_prefilled_form_saved_as_opened_is_counted_in_the_report(app_client):
    node, client = app_client
    url = "/followup/R1/hypertension/new"
    page = client.get(url)
    fields = form_fields(page.text)
    assert fields["sbp"] == ["128"] and fields["dbp"] == ["82"] and fields["heart_rate"] == ["70"]
    assert fields["classification"] == ["1"] and fields["next_step"] == ["1"] and fields["visit_mode"] == ["1"]
    assert "src_sbp" in fields                                   # the device reading behind the value
    r = submit(client, url, page.text)
    assert r.status_code == 302
    shown = client.get(r.headers["Location"]).text
    assert "128/82" in shown and "控制满意" in shown and 'id="saved"' in shown
    assert 'id="p-doctor">王医生<' in shown                    # 随访医生签名: the doctor's name
    row = node.store.one("SELECT bp_source, version, author FROM followups")
    assert row == {"bp_source": "device", "version": 1, "author": "doc"}
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    report = client.get(f"/reports?period={month}").text
    assert 'id="followups-hypertension"' in report
    xlsx = client.get(f"/reports/{month}.xlsx")
    ws = load_workbook(io.BytesIO(xlsx.data)).active
    sheet = {row[0]: row[1:] for row in ws.iter_rows(min_row=3, values_only=True)}
    assert sheet["高血压随访人次 - 合计"] == (1, None, 1)
    assert sheet["管理人群血压控制率"] == (1, 1, 1.0)
    csv_text = client.get(f"/reports/{month}.csv").data.decode("utf-8-sig")
    assert "管理人群血压控制率,1,1,100.0%" in csv_text                # as the page shows it


def test_wrong_value_gets_a_message_next_to_the_field_and_nothing_is_saved(app_client):
    node, client = app_client
    url = "/followup/R1/hypertension/new"
    page = client.get(url)
    r = submit(client, url, page.text, sbp="1300")
    assert r.status_code == 422
    assert 'id="err-sbp">收缩压应在40–300mmHg之间' in r.text
    assert form_fields(r.text)["sbp"] == ["1300"]                # what was typed stays
    assert node.store.scalar("SELECT count(*) FROM followups") == 0


def test_post_without_csrf_token_is_refused(app_client):
    node, client = app_client
    page = client.get("/followup/R1/hypertension/new")
    r = submit(client, "/followup/R1/hypertension/new", page.text, csrf_token="")
    assert (r.status_code, r.location) == (303, "/")
    assert node.store.scalar("SELECT count(*) FROM followups") == 0


def test_correction_is_a_new_version_and_both_are_in_the_audit(app_client):
    node, client = app_client
    url = "/followup/R1/hypertension/new"
    r = submit(client, url, client.get(url).text)
    show_url = r.headers["Location"].split("?")[0]
    fix_url = show_url + "/correct"
    page = client.get(fix_url).text
    r = submit(client, fix_url, page, dbp="84")
    assert r.status_code == 422 and 'id="err-reason"' in r.text       # a correction needs a reason
    r = submit(client, fix_url, page, dbp="84", reason="舒张压看错")
    assert r.status_code == 302
    shown = client.get(show_url).text
    assert "128/84" in shown
    assert shown.count("followup.create") == 1 and shown.count("followup.correct") == 1
    assert "舒张压: 82 → 84" in shown
    assert "128/82" in client.get(show_url + "?version=1").text
    versions = [r["version"] for r in node.store.query(
        "SELECT version FROM outbox WHERE kind = 'followup' ORDER BY seq")]
    assert versions == [1, 2]


def test_urgent_bp_raises_the_alert_and_an_urgent_outbox_entry(env):
    node = Node(config_mod.load(env=env))
    app = create_app(node=node)
    seed(node.store, sbp=186, dbp=104)
    client = app.test_client()
    login(client)
    url = "/followup/R1/hypertension/new"
    page = client.get(url).text
    assert 'id="urgent-alert"' in page and form_fields(page)["next_step"] == ["4"]
    submit(client, url, page, referral_reason="血压≥180", referral_facility="县医院心内科")
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'referral_alert' AND priority = ?",
                             (outbox.PRIORITY_URGENT,)) == 1
    wl = client.get("/worklist").text
    assert 'id="section-urgent"' in wl and "张三R1" in wl.split('id="section-overdue"')[0]
    node.close()


def test_report_numbers_link_to_the_residents_and_english_works(app_client):
    node, client = app_client
    url = "/followup/R1/hypertension/new"
    submit(client, url, client.get(url).text)
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    r = client.get(f"/reports/{month}/residents?key=control_hypertension&part=numerator")
    assert r.status_code == 200 and "张三R1" in r.text
    token = csrf(client.get("/reports").text)
    w = client.post(f"/reports/{month}/write", data={"csrf_token": token})
    assert w.status_code == 302
    assert node.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'report'") == 1
    api = client.get(f"/api/v1/reports/{month}").get_json()
    assert api["indicators"]["control_hypertension"] == {"numerator": 1, "denominator": 1, "rate": 1.0,
                                                         "numerator_ids": ["R1"]}
    assert client.get("/api/v1/worklist").get_json()["urgent"] == []
    client.get("/lang/en")
    assert "BP control rate (managed)" in client.get(f"/reports?period={month}").text
    assert "Systolic BP" in client.get(url).text


def test_diabetes_form_prefilled_with_glucose_and_low_glucose_alert(env):
    from datetime import date, datetime, timezone
    from edge.core.followup import records
    from edge.core.ingest import ingest
    from edge.core.reading import Reading
    node = Node(config_mod.load(env=env))
    app = create_app(node=node)
    seed(node.store)
    records.enrol(node.store, resident_id="R1", disease="diabetes", since=date(2024, 1, 1), actor="t",
                  at=datetime.now(timezone.utc))
    ingest(node.store, [Reading("bp-R1", "2339-0", 70.0, "mg/dL", "demo", device_time=datetime.now(timezone.utc),
                                meta={"meal": "fasting"})])
    client = app.test_client()
    login(client)
    page = client.get("/followup/R1/diabetes/new").text
    f = form_fields(page)
    assert f["fbg"] == ["3.9"]                                   # 70 mg/dL stored as 3.9 mmol/L
    assert 'id="urgent-alert"' in page and "≤3.9" in page and f["next_step"] == ["4"]
    assert f["classification"] == ["2"]       # hypoglycaemia is not "controlled": consistent with the alert
    assert "heart_rate" not in f and "salt" not in f             # hypertension-only fields are not on it
    r = submit(client, "/followup/R1/diabetes/new", page, dorsalis_pedis="1", referral_reason="低血糖",
               referral_facility="县医院内分泌科")
    assert r.status_code == 302
    assert node.store.scalar("SELECT fbg FROM followups WHERE form = 'diabetes'") == 3.9
    node.close()


def test_void_needs_a_reason_and_keeps_the_record(app_client):
    node, client = app_client
    url = "/followup/R1/hypertension/new"
    show_url = submit(client, url, client.get(url).text).headers["Location"].split("?")[0]
    token = csrf(client.get(show_url).text)
    client.post(show_url + "/void", data={"csrf_token": token, "reason": ""})
    assert node.store.scalar("SELECT voided_at FROM followups") is None
    client.post(show_url + "/void", data={"csrf_token": token, "reason": "录错病人"})
    page = client.get(show_url).text
    assert "已作废" in page and "录错病人" in page and "followup.void" in page
    assert node.store.scalar("SELECT count(*) FROM followups") == 1          # still there, voided
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    assert client.get(f"/api/v1/reports/{month}").get_json()["followups"]["hypertension"]["total"] == 0
