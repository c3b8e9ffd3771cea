"""issue 18: shares and recipient events

Revision ID: 0011_shares
Revises: 0010_redaction
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0011_shares"
down_revision = "0010_redaction"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
