"""issue 13: unit hierarchy, case record ids, one-officer marks

Revision ID: 0005_bureau
Revises: 0004_account_badge
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0005_bureau"
down_revision = "0004_account_badge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
