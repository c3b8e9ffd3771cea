"""issue 18: derived recordings, redaction log, approvals

media.derived_from names the original a derived (redacted) recording was made from;
redactions holds the redaction log and the second reviewer's approval.

Revision ID: 0010_redaction
Revises: 0009_access
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_redaction"
down_revision = "0009_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media") as b:
        b.add_column(sa.Column("derived_from", sa.Integer(), nullable=True))
        b.create_foreign_key("fk_media_derived_from", "media", ["derived_from"], ["id"])
        b.create_index("ix_media_derived_from", ["derived_from"])
    op.create_table(
        "redactions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("derived_media_id", sa.Integer(), sa.ForeignKey("media.id"), nullable=False, unique=True),
        sa.Column("original_media_id", sa.Integer(), sa.ForeignKey("media.id"), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_redactions_original_media_id", "redactions", ["original_media_id"])


def downgrade() -> None:
    op.drop_index("ix_redactions_original_media_id", table_name="redactions")
    op.drop_table("redactions")
    with op.batch_alter_table("media") as b:
        b.drop_index("ix_media_derived_from")
        b.drop_constraint("fk_media_derived_from", type_="foreignkey")
        b.drop_column("derived_from")
