"""Metadata store: SQLAlchemy models, transactions and Alembic migrations."""
