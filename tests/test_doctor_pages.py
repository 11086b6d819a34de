"""What the doctor prints and reads (Flask test client on a real store): the report's phone column,
English mode's sync link, sync page and form units, the diastolic plausible range and the inbox's
bulk dismissal with one reason."""
from datetime import date, datetime, timedelta, timezone

from edge.core import devices, measuring
from edge.core.followup.validation import validate
from edge.core.ingest import ingest
from edge.core.reading import Reading
from followup_support import app_client, csrf  # noqa: F401 (fixture)
import re

CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")


def test_report_follow_up_counts_are_headed_by_visit_mode_not_the_residents_phone(app_client):
    _, client = app_client
    page = client.get("/reports").text
    head = page.split('id="followups"')[1].split("</thead>")[0]
    assert "电话" in head and "本人电话" not in head


def test_english_mode_translates_the_sync_link_the_sync_page_and_the_form_units(app_client):
    _, client = app_client
    client.get("/lang/en")
    page = client.get("/sync").text
    main = page.split("<main>")[1]
    nav = page.split('id="nav-sync">')[1].split("</a>")[0]
    assert "Sync" in nav and not CJK.search(nav)
    assert not CJK.search(main), CJK.findall(main)
    form = client.get("/followup/R1/hypertension/new").text
    for zh in ("支", "两", "次/周", "分钟/次", "次/分"):
        assert f'<span class="unit">{zh}</span>' not in form
    assert '<span class="unit">cigarettes</span>' in form and '<span class="unit">times/week</span>' in form


def test_a_diastolic_of_20_is_refused():
    v = validate("hypertension", {"visit_date": "2026-03-10", "visit_mode": "1", "sbp": "120", "dbp": "20",
                                  "classification": "1", "next_visit_date": "2026-06-10"}, today=date(2026, 3, 10))
    assert "舒张压" in v.errors["dbp"] and "30" in v.errors["dbp"]


def test_inbox_bulk_dismiss_with_one_reason(app_client):
    node, client = app_client
    now = datetime.now(timezone.utc)
    devices.add(node.store, "clinic-bp", kind="bp", now=now)
    measuring.stop(node.store, now=now, actor="doc")             # nobody is being measured
    for n in range(3):
        t = now - timedelta(minutes=10 + n)
        ingest(node.store, [Reading("clinic-bp", "8480-6", 120 + n, "mm[Hg]", "mqtt", device_time=t),
                            Reading("clinic-bp", "8462-4", 80, "mm[Hg]", "mqtt", device_time=t)])
    page = client.get("/inbox").text
    assert 'id="bulk-dismiss"' in page and page.count('class="pick-group"') == 3
    groups = [v.split('"')[0] for v in page.split('class="pick-group" form="bulk-dismiss"\n       value="')[1:]]
    r = client.post("/inbox/dismiss", data={"csrf_token": csrf(page), "reading_id": groups[:2], "reason": "试测"})
    assert r.status_code == 303
    left = node.store.query("SELECT value FROM readings WHERE dismissed_at IS NULL AND code = '8480-6'"
                            " AND resident_id IS NULL")
    assert len(left) == 1
    assert node.store.scalar("SELECT count(*) FROM readings WHERE dismiss_reason = '试测'") == 4
