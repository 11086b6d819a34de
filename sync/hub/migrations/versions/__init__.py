"""One module per revision of the hub's schema (Alembic skips this file)."""
