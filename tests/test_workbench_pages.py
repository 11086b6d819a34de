"""Workbench pages through the Flask app: binding a wearable, voiding a reading, dismissing inbox
readings, the JSON API for measuring."""
import re
from datetime import datetime, timezone

import pytest

from edge.core import accounts, audit, devices, residents
from edge.core.ingest import ingest
from edge.core.reading import Reading
from edge.web import create_app

NOW = datetime.now(timezone.utc)


@pytest.fixture
def client(node):
    accounts.add(node.store, "doc", "doctor-pass-1", now=NOW)
    c = create_app(node=node).test_client()
    tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    c.post("/login", data={"username": "doc", "password": "doctor-pass-1", "csrf_token": tok})
    c.token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/").text).group(1)
    return c


@pytest.fixture
def resident(node):
    return residents.create(node.store, {"name": "张三", "id_number": "11010519491231002X"},
                            division_code="110105001001", now=NOW, actor="doc")


def bp(device, value):
    return [Reading(device, "8480-6", value, "mm[Hg]", "mqtt", device_time=NOW),
            Reading(device, "8462-4", value - 65, "mm[Hg]", "mqtt", device_time=NOW)]


def test_bound_wearable_attaches_its_readings_by_itself(client, node, resident):
    devices.add(node.store, "watch-7", kind="wearable", name="手环", now=NOW)
    page = client.get(f"/residents/{resident}").text
    assert 'value="watch-7"' in page
    r = client.post(f"/residents/{resident}/devices", data={"device_id": "watch-7", "csrf_token": client.token})
    assert r.status_code == 303
    assert [o.resident_id for o in ingest(node.store, bp("watch-7", 131))] == [resident, resident]
    assert audit.history(node.store.conn, "device", "watch-7")[-1]["actor"] == "doc"
    client.post(f"/residents/{resident}/devices", data={"device_id": "watch-7", "unbind": "1",
                                                         "csrf_token": client.token})
    assert devices.get(node.store, "watch-7")["resident_id"] is None


def test_void_a_reading_from_the_resident_page(client, node, resident):
    devices.add(node.store, "bp-1", kind="bp", now=NOW)
    rid = ingest(node.store, bp("bp-1", 190))[0].id
    client.post("/api/v1/inbox/assign", json={"reading_ids": [rid], "resident_id": resident},
                headers={"X-CSRFToken": client.token})
    r = client.post(f"/readings/{rid}/void", data={"reason": "", "csrf_token": client.token}, follow_redirects=True)
    assert "请说明作废该读数的原因" in r.text
    r = client.post(f"/readings/{rid}/void", data={"reason": "袖带松了", "csrf_token": client.token},
                    follow_redirects=True)
    assert "已作废: 袖带松了" in r.text
    assert node.store.scalar("SELECT status FROM readings WHERE id = ?", (rid,)) == "voided"


def test_inbox_page_dismiss_with_reason(client, node):
    devices.add(node.store, "bp-1", kind="bp", now=NOW)
    ids = [o.id for o in ingest(node.store, bp("bp-1", 120))]
    page = client.get("/inbox").text
    assert all(i in page for i in ids)
    data = {"reading_id": ids, "reason": "测试测量", "csrf_token": client.token}
    r = client.post("/inbox/dismiss", data=data, follow_redirects=True)
    assert "已忽略 2 条读数" in r.text and "没有待分配的读数" in r.text


def test_measuring_over_the_api(client, node, resident):
    devices.add(node.store, "bp-1", kind="bp", now=NOW)
    h = {"X-CSRFToken": client.token}
    r = client.post("/api/v1/measuring", json={"resident_id": resident, "minutes": 3}, headers=h)
    assert r.status_code == 201 and r.json["measuring"]["resident_name"] == "张三"
    assert [o.resident_id for o in ingest(node.store, bp("bp-1", 150))] == [resident, resident]
    live = client.get(f"/api/v1/residents/{resident}/readings?after=0").json
    assert {x["value"] for x in live["readings"]} == {150, 85} and live["latest"]["8480-6"]["value"] == 150
    assert client.delete("/api/v1/measuring", headers=h).json == {"measuring": None}
    assert [o.resident_id for o in ingest(node.store, bp("bp-1", 151))] == [None, None]
