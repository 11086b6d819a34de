"""Where each clinic is (township, display name), set by county IT for the county view, and an
index to read the `report` records by kind (sync/hub/county.py, docs/county.md).

Revision ID: 0002c
Revises: 0002i
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002c"
down_revision = "0002i"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_node_places",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("township", sa.String(64), nullable=False),
        sa.Column("clinic", sa.String(128)),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=False),
    )
    op.create_index("hub_records_kind", "hub_records", ["kind", "node"])


def downgrade() -> None:
    op.drop_index("hub_records_kind", table_name="hub_records")
    op.drop_table("hub_node_places")
