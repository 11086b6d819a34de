"""The hub's Alembic migrations (env.py and versions/), shipped inside the package; run by
sync/hub/schema.py on the hub's own connection. docs/hub.md, "The hub's database schema"."""
