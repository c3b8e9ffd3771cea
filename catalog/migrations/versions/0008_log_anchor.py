"""issue 17: custody log checkpoints, object records, backups

Revision ID: 0008_log_anchor
Revises: 0007_field_upload
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0008_log_anchor"
down_revision = "0007_field_upload"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
