"""No open redirect after log-in or a language switch (issue 14 item 3): `next=` is followed only
to a page of this app, judged as a browser would read the Location header (WHATWG URL: tabs and
newlines dropped, backslash read as slash)."""
import re
from urllib.parse import urlencode, urljoin, urlsplit

import pytest

from edge.core import accounts
from edge.web import create_app
from tests.live_web import LiveServer

NASTY = [
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/ /evil.example", "\t//evil.example",
    "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
    "https://evil.example/", "http:evil.example", "javascript:alert(1)", "data:text/html,x", "evil.example",
    "/%2F/evil.example", "/%2f%2fevil.example", "/%252F%252Fevil.example", "/%5Cevil.example",
    "/%09/evil.example", "/\x00/evil.example", "/\x0b/evil.example", "/\u3000/evil.example",
    "/\u200b/evil.example", "/\u2028/evil.example", "/\xa0/evil.example", "/residents\r\nSet-Cookie: a=b",
    "/@evil.example", "/.//evil.example", " /", "",
]
GOOD = ["/", "/residents/new", "/inbox", "/?q=%E5%BC%A0", "/admin/users"]
AT_LOGIN = ["/\t/evil.example", "//evil.example", "/\\evil.example", "https://evil.example/", "/%2F/evil.example"]


def as_a_browser_reads(location: str, base: str) -> str:
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("\x00- ").replace("\\", "/")
    return urljoin(base, cleaned)


@pytest.fixture
def app(node):
    accounts.add(node.store, "boss", "admin-pass-1", role="admin", now=node.clock.now())
    return create_app(node=node)


def log_in(client, next_):
    page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login?" + urlencode({"next": next_}),
                       data={"username": "boss", "password": "admin-pass-1", "csrf_token": csrf})


@pytest.mark.parametrize("target", AT_LOGIN)       # each costs an Argon2 check: the language
def test_login_never_sends_the_browser_to_another_host(app, target):
    r = log_in(app.test_client(), target)
    assert r.status_code == 303
    landed = urlsplit(as_a_browser_reads(r.location, "http://clinic.local/login"))
    assert landed.netloc == "clinic.local" and landed.path == "/"


@pytest.mark.parametrize("target", NASTY)          # switch runs the same check on every variant
def test_the_language_switch_never_sends_the_browser_to_another_host(app, target):
    r = app.test_client().get("/lang/en?" + urlencode({"next": target}))
    landed = urlsplit(as_a_browser_reads(r.location, "http://clinic.local/"))
    assert landed.netloc == "clinic.local" and landed.path == "/"


def test_a_page_of_this_app_is_where_the_login_goes(app):
    assert log_in(app.test_client(), "/residents/new?x=1").location == "/residents/new?x=1"


@pytest.mark.parametrize("target", GOOD)
def test_the_language_switch_returns_to_the_page(app, target):
    assert app.test_client().get("/lang/en?" + urlencode({"next": target})).location == target


def test_the_reported_tab_trick_through_the_real_server(node):
    accounts.add(node.store, "boss", "admin-pass-1", role="admin", now=node.clock.now())
    with LiveServer(node) as web:
        c = web.client()
        r = c.post("/login?next=/%09/evil.example",
                   {"username": "boss", "password": "admin-pass-1", "csrf_token": c.token()})
        assert r.status == 303 and r.location == "/"
