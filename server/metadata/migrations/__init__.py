"""Alembic migration scripts (loaded by server.metadata.db.migrate)."""
