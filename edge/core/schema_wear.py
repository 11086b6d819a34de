"""Fewer pages in every ingest commit (migration 540): each B-tree a reading is inserted into is
at least one more page written to the WAL, and on an SD card every byte written is wear
(docs/mqtt.md, "Group commit").

- readings_effective (effective_time) is dropped: readings_period_source (effective_time, status,
  transport, code; migration 501) starts with the same column, so every query that used it reads
  that one instead (edge/core/measuring.py names it);
- outbox_batch (sync's lookup of the rows of a batch, created by sync's migration 200 on core's
  outbox) holds only rows that are in a batch (migration 541): a new row has none yet.
"""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements


@migration(540, "ingest writes fewer pages: readings_effective duplicated readings_period_source")
def drop_duplicate_time_index(db: sqlite_utils.Database) -> None:
    run_statements(db, "DROP INDEX IF EXISTS readings_effective")


@migration(541, "outbox_batch holds only rows in a batch: an ingest commit no longer writes its page")
def outbox_batch_partial(db: sqlite_utils.Database) -> None:
    # Every new outbox row has no batch yet; indexing it put one more page into every ingest
    # commit (docs/mqtt.md, "Group commit"). `batch_id = ?` implies NOT NULL, so SQLite still
    # uses the partial index for every lookup by batch (sqlite.org/partialindex.html, 2.2).
    run_statements(db, "DROP INDEX IF EXISTS outbox_batch",
                   "CREATE INDEX outbox_batch ON outbox(batch_id) WHERE batch_id IS NOT NULL")
