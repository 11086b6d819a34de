"""Issue 19.2: the hub forwards every record's standard document to the county platform (a real
HTTP server on loopback, tests/county_platform.py), tracks each delivery, retries with backoff,
shows refusals with the platform's reason without blocking the rest, and a forwarder killed
mid-run resends nothing twice (docs/interop.md §5)."""
from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from conftest import clinic_edge
from county_platform import Platform
from interop_support import NOW, id_number, node_records
from sync.hub import forwarding
from sync.hub.storage import HubStore

ALWAYS_MAX = lambda: 1.0       # noqa: E731 - backoff jitter at its ceiling: the wait is exact


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """Three residents, each with two follow-ups, as the node sends them (9 records)."""
    return node_records(tmp_path_factory.mktemp("node"), count=3)


@pytest.fixture
def hub_db(tmp_path, sent):
    """A hub database (a SQLite file) holding the 9 records of node village-1."""
    yield from _hub_db(f"sqlite:///{tmp_path / 'hub.db'}", sent)


@pytest.fixture(params=["sqlite", "postgresql"])
def either_hub_db(request, tmp_path, sent):
    """The same on SQLite or on the session's real PostgreSQL server (the hub's scale path)."""
    url = f"sqlite:///{tmp_path / 'hub.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres").new_database()
    yield from _hub_db(url, sent)


def _hub_db(url, sent):
    store = HubStore(url, pool_size=1)
    rows = [{"node": "village-1", "kind": k, "record_id": rid, "version": v,
             "payload": json.dumps(p, ensure_ascii=False), "digest": hashlib.sha256(json.dumps(p).encode()).hexdigest(),
             "batch_id": "b1", "day": "2026-11-20", "received_at": "2026-11-20T03:00:00.000Z"}
            for k, rid, v, p in sent]
    with store.begin() as c:
        store.insert_records(c, rows)
    yield url, store
    store.engine.dispose()


def states(store) -> Counter:
    return Counter(r["state"] for r in forwarding.listing(store))


def test_refused_documents_show_the_reason_and_the_rest_are_delivered_once(either_hub_db):
    _url, store = either_hub_db
    with Platform() as platform:
        platform.refuse = {id_number(1)}
        forwarding.add_profile(store, "county-fhir", county="110101", kind="fhir", target=platform.url + "/fhir",
                               clinics={"village-1": {"name": "东风村卫生室", "code": "110101001001"}}, now=NOW)
        done = forwarding.forward_once(store, now=lambda: NOW)
        assert done == {"county-fhir": {"new": 9, "delivered": 6, "refused": 3}}
        refused = forwarding.listing(store, state="refused")
        assert {r["kind"] for r in refused} == {"resident", "followup"} and len(refused) == 3
        assert {r["reason"] for r in refused} == {
            f"HTTP 422: 身份证号 {id_number(1)} 未在平台建档 (no health record for this ID number)"}
        assert len(platform.requests) == 9
        # the next round sends nothing: delivered and refused documents are done
        assert forwarding.forward_once(store, now=lambda: NOW + timedelta(days=1)) == {"county-fhir": {"new": 0}}
        assert len(platform.requests) == 9
        assert set(platform.created.values()) == {1}
        # 2 residents delivered: 2 Patients, 6 Compositions (a resident's and two follow-ups' each)
        kinds = Counter(k for k, _ in platform.created)
        assert kinds["Patient"] == 2 and kinds["Composition"] == 6 and kinds["Organization"] == 1


def test_a_platform_that_is_down_is_retried_with_backoff_and_not_before(either_hub_db):
    _url, store = either_hub_db
    with Platform() as platform:
        platform.fail_next = 2
        forwarding.add_profile(store, "county-cda", county="110101", kind="cda", target=platform.url + "/cda", now=NOW)
        done = forwarding.forward_once(store, now=lambda: NOW, rand=ALWAYS_MAX)
        assert done == {"county-cda": {"new": 9, "retrying": 2, "delivered": 7}}
        retrying = forwarding.listing(store, state="retrying")
        assert [r["reason"] for r in retrying] == ["HTTP 503: 平台维护中 platform busy"] * 2
        assert {r["next_at"] for r in retrying} == {"2026-11-20T02:30:30.000Z"}     # 30 s after the first try
        assert forwarding.forward_once(store, now=lambda: NOW + timedelta(seconds=29), rand=ALWAYS_MAX) == \
            {"county-cda": {"new": 0}}
        assert forwarding.forward_once(store, now=lambda: NOW + timedelta(seconds=30), rand=ALWAYS_MAX) == \
            {"county-cda": {"new": 0, "delivered": 2}}
        assert states(store) == {"delivered": 9} and len(platform.requests) == 11
        assert len(platform.created) == 9 and set(platform.created.values()) == {1}


def test_a_forwarder_killed_mid_run_resends_nothing_twice(hub_db, env, tmp_path):
    url, store = hub_db
    env = {**env, "CLINIC_EDGE_HUB_DATABASE": url}
    with Platform() as platform:
        platform.hold_at = 4          # the platform stores the 4th document, then the forwarder dies
        clinic_edge(env, "hub", "outbound", "add", "county-fhir", "--county", "110101", "--kind", "fhir",
                    "--target", platform.url + "/fhir", "--clinic", "village-1=东风村卫生室=110101001001")
        proc = subprocess.Popen([sys.executable, "-m", "edge", "hub", "forward", "--once"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert platform.held.wait(60), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        platform.release.set()
        platform.hold_at = None
        assert states(store) == {"delivered": 3, "pending": 6}
        out = clinic_edge(env, "hub", "forward", "--once")
        assert "county-fhir: delivered=6 new=0" in out.stderr
        assert states(store) == {"delivered": 9}
        sent = Counter(platform.requests)
        assert len(platform.requests) == 10 and sorted(sent.values()) == [1] * 8 + [2]   # only the one in flight, again
        assert set(platform.created.values()) == {1}                                      # and stored once
        listing = clinic_edge(env, "hub", "deliveries").stdout.splitlines()
        assert len(listing) == 9 and {tuple(line.split()[:2]) for line in listing} == {("delivered", "county-fhir")}


def test_a_drop_directory_gets_each_document_once_under_its_stable_id(hub_db, tmp_path):
    _url, store = hub_db
    drop = tmp_path / "frontend"
    forwarding.add_profile(store, "qianzhiji", county="110101", kind="drop", target=str(drop), now=NOW)
    assert forwarding.forward_once(store, now=lambda: NOW) == {"qianzhiji": {"new": 9, "delivered": 9}}
    names = sorted(p.name for p in drop.iterdir())
    assert len(names) == 9 and all(n.endswith(".xml") for n in names)
    assert {r["doc_id"] + ".xml" for r in forwarding.listing(store)} == set(names)


def test_a_bad_profile_is_refused_naming_the_field(hub_db, env):
    url, store = hub_db
    with pytest.raises(forwarding.ForwardingError, match="county: the county's 6-digit division code"):
        forwarding.add_profile(store, "x", county="11", kind="fhir", target="http://p/fhir", now=NOW)
    proc = clinic_edge({**env, "CLINIC_EDGE_HUB_DATABASE": url}, "hub", "outbound", "add", "x", "--county",
                       "110101", "--kind", "drop", "--target", "relative/dir", check=False)
    assert proc.returncode != 0 and "target: an absolute directory for a drop profile" in proc.stderr
    assert forwarding.profiles(store) == []


def test_county_it_sees_refusals_with_the_reason_on_the_hub_page(hub_db, env, tmp_path):
    from sync_fixtures import Hub, HubBrowser

    url, store = hub_db
    with Platform() as platform:
        platform.refuse = {id_number(2)}
        forwarding.add_profile(store, "county-fhir", county="110101", kind="fhir", target=platform.url + "/fhir",
                               now=NOW)
        forwarding.forward_once(store, now=lambda: NOW)
    (tmp_path / "hubdata").mkdir()
    hub = Hub(env, tmp_path / "hubdata", url).start()
    try:
        status, page = HubBrowser(hub.url, hub.ssl_context()).get("/deliveries")
        assert status == 200 and 'name="password"' in page and "county-fhir" not in page    # log in first
        status, page = hub.browser("li", "viewer").get("/deliveries")
        assert status == 200
        row = re.search(r'<tr data-profile="county-fhir">(.*?)</tr>', page, re.S).group(1)
        assert re.findall(r'<td class="[^"]*(pending|retrying|delivered|refused)">(\d+)</td>', row) == [
            ("pending", "0"), ("retrying", "0"), ("delivered", "6"), ("refused", "3")]
        reasons = re.findall(r'<td class="reason">([^<]*)</td>', page)
        assert reasons == [f"HTTP 422: 身份证号 {id_number(2)} 未在平台建档 (no health record for this ID number)"] * 3
        assert "deliveries to the county platform" in hub.browser("it2", "viewer").get("/")[1]
    finally:
        hub.stop()


def test_a_follow_up_that_reaches_the_hub_before_its_resident_waits_for_it(hub_db, sent):
    _url, store = hub_db
    with store.begin() as c:
        kept = c.execute(sa.text("SELECT * FROM hub_records WHERE kind = 'resident'")).mappings().all()
        c.execute(sa.text("DELETE FROM hub_records WHERE kind = 'resident'"))
    with Platform() as platform:
        forwarding.add_profile(store, "county-fhir", county="110101", kind="fhir", target=platform.url + "/fhir",
                               now=NOW)
        assert forwarding.forward_once(store, now=lambda: NOW, rand=ALWAYS_MAX) == \
            {"county-fhir": {"new": 6, "retrying": 6}}
        waiting = forwarding.listing(store, state="retrying")
        assert all(r["reason"].startswith("not a standard document: follow-up f-") and
                   r["reason"].endswith("yet") for r in waiting) and platform.requests == []
        with store.begin() as c:
            store.insert_records(c, [dict(r) for r in kept])
        assert forwarding.forward_once(store, now=lambda: NOW + timedelta(seconds=30), rand=ALWAYS_MAX) == \
            {"county-fhir": {"new": 3, "delivered": 9}}
        assert len(platform.requests) == 9


def test_a_malformed_record_is_refused_and_does_not_stop_the_others(hub_db):
    _url, store = hub_db
    with store.begin() as c:
        (f1, p1), (f2, p2) = c.execute(sa.text("SELECT record_id, payload FROM hub_records WHERE kind = 'followup'"
                                               " ORDER BY record_id LIMIT 2")).all()
        no_visit = {k: v for k, v in json.loads(p1).items() if k != "values"}
        no_time = {k: v for k, v in json.loads(p2).items() if k != "saved_at"}
        for rid, payload in ((f1, no_visit), (f2, no_time)):
            c.execute(sa.text("UPDATE hub_records SET payload = :p WHERE record_id = :r"),
                      {"p": json.dumps(payload), "r": rid})
    with Platform() as platform:
        forwarding.add_profile(store, "county-fhir", county="110101", kind="fhir", target=platform.url + "/fhir",
                               now=NOW)
        assert forwarding.forward_once(store, now=lambda: NOW) == {"county-fhir": {"new": 9, "delivered": 7,
                                                                                  "refused": 2}}
        refused = {r["record_id"]: r["reason"] for r in forwarding.listing(store, state="refused")}
        assert refused == {f1: f"not a standard document: follow-up {f1}: no visit_date",
                           f2: "malformed record: KeyError: 'saved_at'"}
        assert len(platform.requests) == 7
