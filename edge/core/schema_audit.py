"""Audit-chain tables (versions 620-629, docs/crypto-suites.md): each entry records the crypto
suite whose hash made it, so a node that moves from `ed25519` to `sm` keeps verifying its old
entries with SHA-256 and its new ones with SM3, on one chain."""
from __future__ import annotations

import sqlite_utils

from .migrations import migration, run_statements as _run


@migration(620, "the crypto suite of each audit entry")
def audit_suite(db: sqlite_utils.Database) -> None:
    # every entry written before this migration was hashed with SHA-256 (the ed25519 suite)
    _run(db, "ALTER TABLE audit ADD COLUMN suite TEXT NOT NULL DEFAULT 'ed25519'")
