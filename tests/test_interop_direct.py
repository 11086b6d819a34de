"""Issue 19: a node configured to send directly ([direct], docs/interop.md §6) sends its own records'
standard documents to the county platform (a real HTTP server on loopback, tests/county_platform.py)
with the hub's delivery states: a refused document shows the platform's reason and holds up none of
the others, a 503 is retried after its backoff, a process killed mid-run sends nothing twice, and
the documents carry the ids the hub's forwarder would give them."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest

from conftest import clinic_edge
from county_platform import Platform
from edge.core import config as config_mod
from edge.core.node import Node
from interop_support import CLINIC, NOW, id_number, make_records
from sync.client import direct, status
from sync.standards import documents

ALWAYS_MAX = lambda: 1.0       # noqa: E731 - backoff jitter at its ceiling: the wait is exact


def direct_env(env, kind: str, target: str) -> dict[str, str]:
    return {**env, "CLINIC_EDGE_NODE_NAME": CLINIC.node, "CLINIC_EDGE_NODE_CLINIC_NAME": CLINIC.name,
            "CLINIC_EDGE_DIRECT_KIND": kind, "CLINIC_EDGE_DIRECT_TARGET": target,
            "CLINIC_EDGE_DIRECT_CLINIC_CODE": CLINIC.code}


@pytest.fixture
def platform():
    with Platform() as p:
        yield p


def node_with_records(env) -> tuple[Node, list]:
    """A node on disk with three residents, each with two follow-ups (9 records), made by its own code."""
    node = Node(config_mod.load(env=env))
    return node, make_records(node.store, 3)


def states(node) -> dict[str, int]:
    return dict(Counter(r["state"] for r in direct.listing(node.store)))


def test_a_refused_document_shows_its_reason_and_the_others_are_delivered(env, platform):
    node, sent = node_with_records(direct_env(env, "fhir", platform.url + "/fhir"))
    try:
        platform.refuse = {id_number(1)}          # the platform has no health record for the second resident
        assert direct.send_once(node, now=lambda: NOW) == {"new": 9, "delivered": 6, "refused": 3}
        refused = direct.listing(node.store, state="refused")
        assert [r["reason"] for r in refused] == [
            f"HTTP 422: 身份证号 {id_number(1)} 未在平台建档 (no health record for this ID number)"] * 3
        # the same document ids as the hub's forwarder gives the same records (sync/standards)
        expected = {documents.build(k, p, None if k == "resident" else _resident(sent, p), CLINIC).doc_id
                    for k, _rid, _v, p in sent}
        assert {r["doc_id"] for r in direct.listing(node.store)} == expected
        # the next round sends nothing: delivered and refused are final for their version
        assert direct.send_once(node, now=lambda: NOW + timedelta(hours=1)) == {"new": 0}
        assert len(platform.requests) == 9
        (finding,) = [f for f in status.findings(node, NOW) if f.check == "county platform"]
        assert (finding.level, finding.detail.split(" (")[0]) == ("problem", "3 documents refused by the county platform")
        totals = status.report(node)["direct"]
        assert {k: totals[k] for k in ("kind", "target", "pending", "retrying", "delivered", "refused")} == {
            "kind": "fhir", "target": platform.url + "/fhir", "pending": 0, "retrying": 0, "delivered": 6,
            "refused": 3}
    finally:
        node.close()


def _resident(sent, payload):
    return next(p for k, rid, _v, p in sent if k == "resident" and rid == payload["resident_id"])


def test_a_platform_that_is_down_is_tried_again_after_the_backoff(env, platform):
    node, _sent = node_with_records(direct_env(env, "cda", platform.url + "/cda"))
    try:
        platform.fail_next = 2
        assert direct.send_once(node, now=lambda: NOW, rand=ALWAYS_MAX) == {"new": 9, "retrying": 2, "delivered": 7}
        retrying = direct.listing(node.store, state="retrying")
        assert [r["reason"] for r in retrying] == ["HTTP 503: 平台维护中 platform busy"] * 2
        assert {r["next_at"] for r in retrying} == {"2026-11-20T02:30:30.000Z"}     # 30 s after the first try
        (finding,) = [f for f in status.findings(node, NOW) if f.check == "county platform"]
        assert finding.level == "warning"
        assert direct.send_once(node, now=lambda: NOW + timedelta(seconds=29), rand=ALWAYS_MAX) == {"new": 0}
        assert direct.send_once(node, now=lambda: NOW + timedelta(seconds=30), rand=ALWAYS_MAX) == \
            {"new": 0, "delivered": 2}
        assert states(node) == {"delivered": 9} and len(platform.requests) == 11
        assert len(platform.created) == 9 and set(platform.created.values()) == {1}
    finally:
        node.close()


def test_a_sender_killed_mid_run_delivers_nothing_twice(env, platform):
    env = direct_env(env, "fhir", platform.url + "/fhir")
    node, _sent = node_with_records(env)
    node.close()
    platform.hold_at = 4          # the platform stores the 4th document, then the sender dies
    proc = subprocess.Popen([sys.executable, "-m", "edge", "sync", "direct", "--once"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert platform.held.wait(60), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    platform.release.set()
    platform.hold_at = None
    rows = json.loads(clinic_edge(env, "sync", "direct", "--list", "--json").stdout)
    assert Counter(r["state"] for r in rows) == {"delivered": 3, "pending": 6}
    out = clinic_edge(env, "sync", "direct", "--once")
    assert 'direct: {"delivered": 6, "new": 0}' in out.stderr
    sent = Counter(platform.requests)
    assert len(platform.requests) == 10 and sorted(sent.values()) == [1] * 8 + [2]   # only the one in flight, again
    assert set(platform.created.values()) == {1}                                      # and stored once
    listing = clinic_edge(env, "sync", "direct", "--list").stdout.splitlines()
    assert len(listing) == 9 and {line.split()[0] for line in listing} == {"delivered"}
    doctor = clinic_edge(env, "doctor", check=False).stdout
    assert "county platform: 9 documents delivered, 0 pending" in doctor
    assert f"county platform (fhir -> {platform.url}/fhir): 9 delivered, 0 pending, 0 retrying, 0 refused" in \
        clinic_edge(env, "sync", "status").stdout


def test_a_drop_directory_gets_each_document_once_and_a_correction_is_a_new_document(env, tmp_path):
    drop = tmp_path / "frontend"
    node, sent = node_with_records(direct_env(env, "drop", str(drop)))
    try:
        assert direct.send_once(node, now=lambda: NOW) == {"new": 9, "delivered": 9}
        assert sorted(p.name for p in drop.iterdir()) == sorted(r["doc_id"] + ".xml" for r in direct.listing(node.store))
        from edge.core import residents
        rid, first = sent[0][1], sent[0][3]
        fields = {k: first[k] for k in ("name", "id_number", "sex", "birth_date", "phone", "htn", "htn_diagnosed_on",
                                        "t2dm", "t2dm_diagnosed_on")}
        residents.update(node.store, rid, {**fields, "address": "东风村5组"}, actor="doc", now=NOW + timedelta(days=1))
        assert direct.send_once(node, now=lambda: NOW + timedelta(days=1)) == {"new": 1, "delivered": 1}
        assert len(list(drop.iterdir())) == 10
    finally:
        node.close()


def test_a_direct_profile_that_cannot_work_is_refused_with_the_key_to_fix(env):
    out = clinic_edge(direct_env(env, "fhir", "ftp://platform.example"), "sync", "direct", "--once", check=False)
    assert out.returncode != 0
    assert "[direct] target: an http(s):// URL for a fhir profile, not 'ftp://platform.example'" in out.stderr
    with pytest.raises(config_mod.ConfigError, match="direct"):
        config_mod.load(env=direct_env(env, "smtp", "x"))
    out = clinic_edge(env, "sync", "direct", "--once", check=False)
    assert out.returncode != 0 and "set [direct] kind and target" in out.stderr


def test_the_unit_on_a_box_that_sends_through_the_hub_ends_at_once_without_a_restart_loop(env):
    """systemd/clinic-edge-direct.service is enabled on every card: where [direct] is not set it must
    end with status 0 (Restart=on-failure then leaves it), not fail every 30 s for good."""
    out = clinic_edge(env, "sync", "direct", "--if-configured", timeout=30)
    assert out.returncode == 0
    assert "[direct] kind is not set" in out.stderr
