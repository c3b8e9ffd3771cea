"""offload_items.sidecar: the small text/JSON file a device writes beside a recording

Revision ID: 0003_spine_sidecar
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_spine_sidecar"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offload_items") as b:
        b.add_column(sa.Column("sidecar", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offload_items") as b:
        b.drop_column("sidecar")
