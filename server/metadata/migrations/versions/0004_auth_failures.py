"""Wrong passwords kept for the log-in and registration lockout.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.metadata.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("username", sa.String(254), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
    )
    op.create_index("ix_auth_failures_at", "auth_failures", ["at"])
    op.create_index("ix_auth_failures_username", "auth_failures", ["username"])


def downgrade() -> None:
    op.drop_index("ix_auth_failures_username", table_name="auth_failures")
    op.drop_index("ix_auth_failures_at", table_name="auth_failures")
    op.drop_table("auth_failures")
