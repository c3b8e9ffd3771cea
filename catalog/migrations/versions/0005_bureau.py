"""issue 13: case record ids, follow-ups and the fewer-than-two-officers mark

(units.parent_code already exists since 0001; the unit hierarchy needs no schema change.)

Revision ID: 0005_bureau
Revises: 0004_account_badge
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_bureau"
down_revision = "0004_account_badge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as b:
        b.add_column(sa.Column("record_id", sa.String(64), nullable=True))
        b.add_column(sa.Column("follows_up", sa.String(64), nullable=True))
        b.add_column(sa.Column("fewer_than_two_officers", sa.Boolean(), nullable=False,
                               server_default=sa.false()))
        b.create_unique_constraint("uq_cases_record_id", ["record_id"])


def downgrade() -> None:
    with op.batch_alter_table("cases") as b:
        b.drop_constraint("uq_cases_record_id", type_="unique")
        b.drop_column("fewer_than_two_officers")
        b.drop_column("follows_up")
        b.drop_column("record_id")
