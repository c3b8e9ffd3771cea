"""issue 18: derived recordings, redaction log, approvals

Revision ID: 0010_redaction
Revises: 0009_access
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0010_redaction"
down_revision = "0009_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
