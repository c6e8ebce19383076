"""Alembic environment: runs on the connection ``server.metadata.db.migrate`` passes in.

There is no ``alembic.ini``; the server configures Alembic programmatically and
upgrades its own schema on start.
"""

from __future__ import annotations

from alembic import context

from server.metadata.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
