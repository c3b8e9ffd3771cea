"""issue 16: stations, leases, station on sessions/events

Revision ID: 0006_stations
Revises: 0005_bureau
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0006_stations"
down_revision = "0005_bureau"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
