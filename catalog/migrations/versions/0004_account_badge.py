"""accounts.officer_badge: which officer an inspector account is (their own recordings)

Revision ID: 0004_account_badge
Revises: 0003_spine_sidecar
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_account_badge"
down_revision = "0003_spine_sidecar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as b:
        b.add_column(sa.Column("officer_badge", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as b:
        b.drop_column("officer_badge")
