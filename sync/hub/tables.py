"""The hub's tables as the code reads and writes them (SQLAlchemy Core), with their indexes. The
database gets them from the Alembic revisions in migrations/versions/ (sync/hub/schema.py); a
test compares the two (tests/test_hub_schema.py). Used through sync/hub/storage.py."""
from __future__ import annotations

import sqlalchemy as sa

meta = sa.MetaData()

nodes = sa.Table(
    "hub_nodes", meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("pubkey", sa.String(128)),     # signing.public_text: ed25519, or "sm:..." (revision 0002s)
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("enrolled_at", sa.String(32)),
    sa.Column("last_contact", sa.String(32)),
    sa.Column("status", sa.Text, nullable=False, server_default="{}"),
)
codes = sa.Table(
    "hub_codes", meta,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("used_at", sa.String(32)),
)
nonces = sa.Table(
    "hub_nonces", meta,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.String(32), nullable=False),
)
chunks = sa.Table(
    "hub_upload_chunks", meta,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("offset", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
)
batches = sa.Table(
    "hub_batches", meta,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("seq_from", sa.BigInteger, nullable=False),
    sa.Column("seq_to", sa.BigInteger, nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("via", sa.String(16), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.Column("receipt", sa.Text, nullable=False),
)
records = sa.Table(
    "hub_records", meta,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("received_at", sa.String(32), nullable=False),
)
downlink = sa.Table(
    "hub_downlink", meta,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(64), nullable=False),      # '*' = every node
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("record_id", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)
audit_heads = sa.Table(   # every audit head a node reported that differs from its last (sync/hub/anchors.py)
    "hub_audit_heads", meta,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.Column("problem", sa.Text),            # NULL: extends the previous good head; else why not
)
users = sa.Table(          # county IT's accounts for the dashboard (sync/hub/accounts.py)
    "hub_users", meta,
    sa.Column("username", sa.String(32), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("disabled_at", sa.String(32)),
)
login_failures = sa.Table(
    "hub_login_failures", meta,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
)
settings = sa.Table(       # hub-wide secrets shared by every worker (the dashboard's session key)
    "hub_settings", meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
places = sa.Table(         # where a clinic is, set by county IT (sync/hub/county.py, docs/county.md)
    "hub_node_places", meta,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("township", sa.String(64), nullable=False),
    sa.Column("clinic", sa.String(128)),                 # the clinic's display name; NULL: the node name
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("updated_by", sa.String(32), nullable=False),
)
node_keys = sa.Table(     # keys a node had before it re-enrolled (docs/crypto-suites.md, revision 0002s)
    "hub_node_keys", meta,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("pubkey", sa.String(128), primary_key=True),
    sa.Column("suite", sa.String(16), nullable=False),
    sa.Column("retired_at", sa.String(32), nullable=False),
)
refusals = sa.Table(      # signatures refused, and why (revision 0002s)
    "hub_signature_refusals", meta,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("what", sa.String(16), nullable=False),     # request, batch
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
)
sa.Index("hub_signature_refusals_node", refusals.c.node, refusals.c.id)
sa.Index("hub_audit_heads_node", audit_heads.c.node, audit_heads.c.id)
sa.Index("hub_login_failures_key", login_failures.c.key, login_failures.c.at)
sa.Index("hub_downlink_node", downlink.c.node, downlink.c.seq)
sa.Index("hub_records_day", records.c.node, records.c.day)
sa.Index("hub_records_kind", records.c.kind, records.c.node)
sa.Index("hub_batches_high", batches.c.node, batches.c.seq_to)   # revision 0002h: the receipt's high water
sa.Index("hub_nonces_seen", nonces.c.seen_at)                    # revision 0002h: pruning old nonces
