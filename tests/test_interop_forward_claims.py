"""Two `hub forward` processes at once never send the same delivery (docs/interop.md §5, "Two
forwarders"): real processes against one hub database, SQLite file and the session's real
PostgreSQL, and a real HTTP platform on loopback (tests/county_platform.py) that holds its answer
to the first document while the second forwarder runs."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
import sqlalchemy as sa

from conftest import clinic_edge
from county_platform import Platform
from interop_support import node_records
from tests.test_interop_forwarding import _hub_db, states


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    return node_records(tmp_path_factory.mktemp("node"), count=3)


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request, tmp_path, sent):
    url = f"sqlite:///{tmp_path / 'hub.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres").new_database()
    yield from _hub_db(url, sent)


def test_two_forwarders_at_once_send_each_document_once(hub, env):
    url, store = hub
    env = {**env, "CLINIC_EDGE_HUB_DATABASE": url}
    with Platform() as platform:
        platform.hold_at = 1               # the first forwarder's first document is held in flight
        clinic_edge(env, "hub", "outbound", "add", "county-fhir", "--county", "110101", "--kind", "fhir",
                    "--target", platform.url + "/fhir", "--clinic", "village-1=东风村卫生室=110101001001")
        first = subprocess.Popen([sys.executable, "-m", "edge", "hub", "forward", "--once"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert platform.held.wait(60), first.communicate(timeout=5)
            second = clinic_edge(env, "hub", "forward", "--once")       # runs to the end meanwhile
            assert "county-fhir: delivered=8 new=0" in second.stderr
            assert first.poll() is None                                 # still waiting for its answer
            platform.release.set()
            _out, err = first.communicate(timeout=60)
        finally:
            platform.release.set()
            if first.poll() is None:
                first.kill()
        assert first.returncode == 0, err
        assert "county-fhir: delivered=1 new=9" in err
    assert len(platform.requests) == 9 and set(Counter(platform.requests).values()) == {1}
    assert states(store) == {"delivered": 9}
    with store.engine.connect() as c:                               # every claim was cleared with its outcome
        assert c.execute(sa.text("SELECT count(*) FROM hub_deliveries WHERE claimed_by IS NOT NULL")).scalar() == 0
