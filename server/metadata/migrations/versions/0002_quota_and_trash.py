"""Storage quotas per organization and the trash log that makes deletions restorable.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.metadata.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orgs") as batch:
        batch.add_column(sa.Column("storage_quota_bytes", sa.BigInteger(), nullable=True))
    op.create_table(
        "trashed_objects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("archive_id", sa.String(32), sa.ForeignKey("archives.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("trashed_at", UTCDateTime(), nullable=False),
        sa.Column("trashed_by", sa.String(32), nullable=True),
    )
    op.create_index("ix_trashed_objects_archive_id", "trashed_objects", ["archive_id"])


def downgrade() -> None:
    op.drop_table("trashed_objects")
    with op.batch_alter_table("orgs") as batch:
        batch.drop_column("storage_quota_bytes")
