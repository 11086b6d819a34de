"""A node with its certificate from a county CA, as enrollment leaves it (tests/test_enroll_trust.py
runs enrollment itself against a real hub): the real sync.hub.ca and sync.client.tls code, in-process."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sync.client import tls
from sync.hub import ca as ca_mod


def give_node_certificate(data_dir: Path, county_dir: Path, name: str = "clinic-a") -> ca_mod.CountyCA:
    county = ca_mod.load_or_create(county_dir)
    pending = tls.PendingKey(data_dir)
    cert = county.issue_node(pending.csr(), name, now=datetime.now(timezone.utc))
    pending.save(county.pem.decode(), cert.decode())
    return county
