"""Node keys of either crypto suite (docs/crypto-suites.md): `hub_nodes.pubkey` holds the node's
current key as its text (an sm key is "sm:" + 87 characters, so the column widens to 128); the
keys a node had before it re-enrolled in another suite stay in `hub_node_keys`, so batches it
signed with them still verify; `hub_signature_refusals` counts what was refused and why.

Revision ID: 0002s
Revises: 0002k
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002s"
down_revision = "0002k"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_nodes") as t:
        t.alter_column("pubkey", type_=sa.String(128), existing_type=sa.String(64))
    op.create_table(
        "hub_node_keys",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("pubkey", sa.String(128), primary_key=True),
        sa.Column("suite", sa.String(16), nullable=False),
        sa.Column("retired_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "hub_signature_refusals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("what", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("hub_signature_refusals_node", "hub_signature_refusals", ["node", "id"])


def downgrade() -> None:
    op.drop_index("hub_signature_refusals_node", "hub_signature_refusals")
    op.drop_table("hub_signature_refusals")
    op.drop_table("hub_node_keys")
    with op.batch_alter_table("hub_nodes") as t:
        t.alter_column("pubkey", type_=sa.String(64), existing_type=sa.String(128))
