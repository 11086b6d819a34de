"""Alembic's environment for the hub. There is no alembic.ini and no URL here: sync/hub/schema.py
opens the hub's own engine (`[hub] database`), takes its lock, and hands this file the connection
as `config.attributes["connection"]`, already inside the one transaction the upgrade runs in."""
from alembic import context

from sync.hub.storage import meta

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the hub's schema is migrated by `clinic-edge hub db upgrade` or `hub serve` "
                       "(sync/hub/schema.py), not by the alembic command")
context.configure(connection=connection, target_metadata=meta)
with context.begin_transaction():   # the caller's transaction: nothing is committed here
    context.run_migrations()
