"""Forwarding to the county platform (issue 19.2, docs/interop.md §5): outbound profiles and one
delivery row per (profile, record version) with its state.

Revision ID: 0002i
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002i"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_outbound",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("county", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("clinics", sa.Text, nullable=False, server_default="{}"),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "hub_deliveries",
        sa.Column("profile", sa.String(64), primary_key=True),
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("record_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("doc_id", sa.String(64)),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("delivered_at", sa.String(32)),
    )
    op.create_index("hub_deliveries_due", "hub_deliveries", ["profile", "state", "next_at"])


def downgrade() -> None:
    op.drop_index("hub_deliveries_due", table_name="hub_deliveries")
    op.drop_table("hub_deliveries")
    op.drop_table("hub_outbound")
