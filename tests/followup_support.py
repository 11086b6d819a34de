"""Helpers shared by the follow-up web and browser tests: a resident with a device BP reading
attached through the real ingest(), a doctor account, and an HTML form reader for the test client."""
from __future__ import annotations

import re
import zlib
from datetime import date, datetime, timezone
from html.parser import HTMLParser

import pytest

from edge.core import accounts, devices, measuring
from edge.core.followup import records
from edge.core.ingest import ingest
from edge.core.reading import Reading

PASSWORD = "doctor-pass-1"


def seed(store, *, now: datetime | None = None, rid: str = "R1", birth: str = "1955-02-03",
         sbp: float = 128, dbp: float = 82, username: str = "doc") -> str:
    """A doctor, a hypertension patient managed since 2024 and today's BP from a bound device,
    measured in this visit's measuring session."""
    now = now or datetime.now(timezone.utc)
    if accounts.by_username(store, username) is None:
        accounts.add(store, username, PASSWORD, display_name="王医生", now=now)
    with store.atomic() as conn:
        conn.execute("INSERT INTO residents (id, name, birth_date, sex, health_record_no, created_at, updated_at,"
                     " htn, htn_diagnosed_on) VALUES (?,?,?,?,?,?,?,1,'2024-01-01')", (rid, "张三" + rid, birth, "1", f"110101001001{zlib.crc32(rid.encode()) % 100000:05d}",
                                                 "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"))
    records.enrol(store, resident_id=rid, disease="hypertension", since=date(2024, 1, 1), actor="test", at=now)
    devices.add(store, "bp-" + rid, kind="bp", transport="demo", resident_id=rid, now=now)
    measuring.start(store, rid, now=now, actor=username, switch=True)       # this visit's measuring session
    ingest(store, [Reading("bp-" + rid, "8480-6", sbp, "mm[Hg]", "demo", device_time=now),
                   Reading("bp-" + rid, "8462-4", dbp, "mm[Hg]", "demo", device_time=now),
                   Reading("bp-" + rid, "8867-4", 70, "/min", "demo", device_time=now)])
    return rid


class FormReader(HTMLParser):
    """What a browser would submit for the form with this id: inputs as filled in."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id = form_id
        self.fields: list[tuple[str, str]] = []
        self.in_form = False
        self.in_template = 0          # a <template>'s inputs are not the form's (rows.js copies them)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "template":
            self.in_template += 1
        if tag == "form" and a.get("id") == self.form_id:
            self.in_form = True
        elif tag == "input" and self.in_form and not self.in_template and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "template":
            self.in_template -= 1
        if tag == "form":
            self.in_form = False


def form_fields(html: str, form_id: str = "followup-form") -> dict[str, list[str]]:
    r = FormReader(form_id)
    r.feed(html)
    out: dict[str, list[str]] = {}
    for k, v in r.fields:
        out.setdefault(k, []).append(v)
    return out


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]*)"', html).group(1)


def login(client, username: str = "doc") -> None:
    token = csrf(client.get("/login").text)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text[:500]


@pytest.fixture
def app_client(env):
    """A logged-in doctor's test client on a node seeded with one enrolled resident."""
    from edge.core import config as config_mod
    from edge.core.node import Node
    from edge.web import create_app

    node = Node(config_mod.load(env=env))
    app = create_app(node=node)
    seed(node.store)
    client = app.test_client()
    login(client)
    yield node, client
    node.close()
