"""issue 14: search indexes

Revision ID: 0012_search
Revises: 0011_shares
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0012_search"
down_revision = "0011_shares"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
