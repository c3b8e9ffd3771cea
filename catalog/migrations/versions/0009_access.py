"""issue 17: MFA, access review, rate limits

Revision ID: 0009_access
Revises: 0008_log_anchor
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0009_access"
down_revision = "0008_log_anchor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
