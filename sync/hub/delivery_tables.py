"""The forwarder's tables (revisions 0002i, 0002k), in storage.py's metadata (docs/interop.md §5)."""
from __future__ import annotations

import sqlalchemy as sa

from .storage import meta

outbound = sa.Table(       # where a county's platform takes documents
    "hub_outbound", meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("county", sa.String(12), nullable=False),          # the county's 6-digit division code
    sa.Column("kind", sa.String(8), nullable=False),             # fhir, cda or drop
    sa.Column("target", sa.Text, nullable=False),                # the URL, or the drop directory
    sa.Column("clinics", sa.Text, nullable=False, server_default="{}"),   # node -> {"name", "code"}
    sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.String(32), nullable=False),
)
deliveries = sa.Table(     # one row per (profile, record version): pending, retrying, delivered, refused
    "hub_deliveries", meta,
    sa.Column("profile", sa.String(64), primary_key=True),
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("doc_id", sa.String(64)),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text),                                # the platform's refusal, or the last error
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("delivered_at", sa.String(32)),
    sa.Column("claimed_by", sa.String(128)),                     # host:pid of the forwarder sending it (0002k)
    sa.Column("claimed_until", sa.String(32)),                   # the end of that forwarder's lease
)
sa.Index("hub_deliveries_due", deliveries.c.profile, deliveries.c.state, deliveries.c.next_at)
