"""How much a cycle sends at once on a link that keeps being cut (issue 17.4, sync/client/pacing.py):
chunks as long as the cuts allow, batches that a cut does not shrink, and an upload cut within a
cycle going on from the hub's last offset without asking for it again."""
from __future__ import annotations

from edge.core import config as config_mod
from edge.core.node import Node
from sync.client import pacing, state
from sync.client.controller import Cycle
from sync.client.errors import LinkError
from sync_fixtures import add_records, enroll, hub, hub_database, hub_records, node_records, sync_env  # noqa: F401


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def link_cut_every(seconds: float, *, rate: float = 8000.0, cuts: int = 6) -> pacing.Pace:
    """A Pace fed by a 64 kbit/s link whose connections are cut every `seconds`."""
    clock = Clock()
    pace = pacing.Pace(16384, 500, max_records=5000, monotonic=clock)
    for _ in range(cuts):
        end = clock.t + seconds
        while clock.t + pace.chunk / rate < end:
            clock.t += pace.chunk / rate
            pace.carried(pace.chunk, pace.chunk / rate)
        clock.t = end
        pace.broke(timed_out=False)
    return pace


def test_chunks_shrink_to_what_loses_least_between_the_cuts_and_batches_keep_their_size():
    often, seldom = link_cut_every(5), link_cut_every(30)
    assert 0.6 <= often.chunk / 8000 <= 1.2            # sqrt(2 x 600/8000 s x 5 s) = 0.87 s of the link
    assert 1.6 <= seldom.chunk / 8000 <= pacing.CHUNK_SECONDS
    assert often.batch_records == seldom.batch_records == 500
    often.broke(timed_out=True)                         # a link that stalls: smaller batches too
    assert often.batch_records == 250
    often.batch_done()
    assert often.batch_records == 500


def test_a_cut_upload_goes_on_from_the_hubs_last_offset_without_asking_again(env, node, hub):
    enroll(env, hub)
    add_records(node, 300)
    pi = Node(config_mod.load(env=sync_env(env, hub_url=hub.url, batch_records=300, chunk_bytes=1024)))
    try:
        cycle = Cycle(pi, state.identity(pi), sleep=lambda s: None)
        cycle.chunk = 1024
        real, calls = cycle.client.call, []

        def cut_once(method, path, body=b"", **kw):       # the link cuts the fourth chunk
            calls.append((method, path, len(body)))
            if method == "PUT" and len([c for c in calls if c[0] == "PUT"]) == 4:
                raise LinkError("PUT: ConnectionResetError: cut", sent_bytes=len(body))
            return real(method, path, body, **kw)

        cycle.client.call = cut_once
        result = cycle.run()
    finally:
        pi.close()
    assert result.ok, result.error
    assert not any(m == "GET" for m, _p, _n in calls)
    puts = [p for m, p, _n in calls if m == "PUT"]
    assert puts[4] == puts[3]                          # the cut chunk again, from the offset the hub said
    assert sorted(hub_records(hub)) == sorted(node_records(node))
