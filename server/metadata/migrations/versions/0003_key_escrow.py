"""Archive key escrow: organization key pairs, key-level policies, archive keys, device keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.metadata.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_key_pairs",
        sa.Column("org_id", sa.String(32), sa.ForeignKey("orgs.id"), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "org_key_policies",
        sa.Column("org_id", sa.String(32), sa.ForeignKey("orgs.id"), primary_key=True),
        sa.Column("required_level", sa.String(10), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "archive_keys",
        sa.Column("archive_id", sa.String(32), sa.ForeignKey("archives.id"), primary_key=True),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("archive_key_id", sa.String(32), nullable=False),
        sa.Column("escrow", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "device_keys",
        sa.Column("device_id", sa.String(32), sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("device_keys", "archive_keys", "org_key_policies", "org_key_pairs"):
        op.drop_table(table)
