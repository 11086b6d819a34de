"""The hub's schema as the hub before migrations made it (sync/hub/storage.py at commit 1cdaed0).

A database that hub created has no alembic_version table; sync/hub/schema.py recognises it by
its tables, creates those of the tables below that an older hub had not made yet (as that hub's
next start would have), and stamps it with this revision instead of running it. The tables are
written out here, frozen, not imported from storage.py, which moves on with later revisions.

Revision ID: 0001
Revises: (none)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = sa.MetaData()

nodes = sa.Table(
    "hub_nodes", TABLES,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("pubkey", sa.String(64)),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("enrolled_at", sa.String(32)),
    sa.Column("last_contact", sa.String(32)),
    sa.Column("status", sa.Text, nullable=False, server_default="{}"),
)
codes = sa.Table(
    "hub_codes", TABLES,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("used_at", sa.String(32)),
)
nonces = sa.Table(
    "hub_nonces", TABLES,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.String(32), nullable=False),
)
chunks = sa.Table(
    "hub_upload_chunks", TABLES,
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("offset", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
)
batches = sa.Table(
    "hub_batches", TABLES,
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
    "hub_records", TABLES,
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
    "hub_downlink", TABLES,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("record_id", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)
audit_heads = sa.Table(
    "hub_audit_heads", TABLES,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.Column("problem", sa.Text),
)
users = sa.Table(
    "hub_users", TABLES,
    sa.Column("username", sa.String(32), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("disabled_at", sa.String(32)),
)
login_failures = sa.Table(
    "hub_login_failures", TABLES,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
)
settings = sa.Table(
    "hub_settings", TABLES,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
sa.Index("hub_audit_heads_node", audit_heads.c.node, audit_heads.c.id)
sa.Index("hub_login_failures_key", login_failures.c.key, login_failures.c.at)
sa.Index("hub_downlink_node", downlink.c.node, downlink.c.seq)
sa.Index("hub_records_day", records.c.node, records.c.day)


def upgrade() -> None:
    TABLES.create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    raise NotImplementedError("the first revision holds every record the county received: no migration "
                              "drops it; restore a backup or drop the database by hand")
