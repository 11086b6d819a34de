"""Indexes for a county of nodes syncing at once (issue 17 item 5, docs/hub.md "Many nodes at once").

- hub_batches_high (node, seq_to): every receipt carries the node's high water, max(seq_to) over its
  batches; with only the (node, batch_id) key that read every batch the node ever sent.
- hub_nonces_seen (seen_at): pruning forgets nonces older than the retention; without it each prune
  read the whole table.

Revision ID: 0002h
Revises: 0002c
"""
from __future__ import annotations

from alembic import op

revision = "0002h"
down_revision = "0002c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("hub_batches_high", "hub_batches", ["node", "seq_to"])
    op.create_index("hub_nonces_seen", "hub_nonces", ["seen_at"])


def downgrade() -> None:
    op.drop_index("hub_nonces_seen", table_name="hub_nonces")
    op.drop_index("hub_batches_high", table_name="hub_batches")
