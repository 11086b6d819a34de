"""Two `hub forward` processes at once never send the same delivery: each claims a due row first
(sync/hub/forwarding.py, docs/interop.md §5). `claimed_by` is host:pid of the forwarder sending it,
`claimed_until` the end of its lease.

Revision ID: 0002k
Revises: 0002h
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002k"
down_revision = "0002h"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_deliveries") as t:
        t.add_column(sa.Column("claimed_by", sa.String(128)))
        t.add_column(sa.Column("claimed_until", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("hub_deliveries") as t:
        t.drop_column("claimed_until")
        t.drop_column("claimed_by")
