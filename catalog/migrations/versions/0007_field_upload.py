"""issue 15: device tokens, API tokens, field uploads

Revision ID: 0007_field_upload
Revises: 0006_stations
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007_field_upload"
down_revision = "0006_stations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
