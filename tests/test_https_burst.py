"""A burst of connections reaches the server instead of being dropped at the door: 300 clinics'
nodes syncing after a county link comes back, or forty browsers at once. With cheroot's default
listen backlog of 5, the kernel drops the SYNs beyond it and a client whose handshake completed
into a full queue is reset about a minute later (seen as ConnectionResetError under load).
edge.core.https.CherootService listens with a backlog of BACKLOG; docs/api.md says so."""
from __future__ import annotations

import select
import socket
import time

from edge.core import https


def test_three_hundred_connections_at_once_are_all_taken_into_the_queue():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    service = https.CherootService(app, "127.0.0.1", 0, threads=2)   # bound and listening, not yet accepting
    socks = []
    try:
        for _ in range(300):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", service.port))
            socks.append(s)
        pending, deadline = set(socks), time.monotonic() + 3
        while pending and time.monotonic() < deadline:       # a deadline, not a clock: done as soon as all are in
            _, ready, _ = select.select([], list(pending), [], 0.2)
            pending -= {s for s in ready if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0}
        assert len(pending) == 0, f"{len(pending)} of 300 connections still waiting for the server's handshake"
    finally:
        for s in socks:
            s.close()
        service.close()
