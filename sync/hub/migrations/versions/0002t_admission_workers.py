"""Each hub worker process's admission figures (sync/hub/admission_figures.py; docs/hub.md,
"Admission control"): one row per worker (host:pid), rewritten by the worker at most every ~10 s
when its figures changed, so the dashboard shows the uploads every worker turned away.

Revision ID: 0002t
Revises: 0002s
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002t"
down_revision = "0002s"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_admission_workers",
        sa.Column("worker", sa.String(160), primary_key=True),
        sa.Column("host", sa.String(128), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("served_last_minute", sa.Integer, nullable=False),
        sa.Column("shed_last_minute", sa.Integer, nullable=False),
        sa.Column("in_service", sa.Integer, nullable=False),
        sa.Column("in_service_limit", sa.Integer, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hub_admission_workers")
