"""issue 18: shares and recipient events

shares (a revocable link: token hash, recipient and kind, expiry, access code hash, download
limit), share_items (the recordings in it, with hash and size when shared) and share_grants
(who may share originals).  Recipient views and downloads go to the custody log.

Revision ID: 0011_shares
Revises: 0010_redaction
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_shares"
down_revision = "0010_redaction"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("recipient_kind", sa.String(16), nullable=False),
        sa.Column("content", sa.String(16), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("code_hash", sa.Text(), nullable=True),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("failed_code_attempts", sa.Integer(), nullable=False),
        sa.Column("code_locked_until", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_shares_case_id", "shares", ["case_id"])
    op.create_index("ix_shares_created_by", "shares", ["created_by"])
    op.create_table(
        "share_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("share_id", sa.Integer(), sa.ForeignKey("shares.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), sa.ForeignKey("media.id"), nullable=False),
        sa.Column("original_media_id", sa.Integer(), sa.ForeignKey("media.id"), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("share_id", "media_id"),
    )
    op.create_index("ix_share_items_share_id", "share_items", ["share_id"])
    op.create_index("ix_share_items_media_id", "share_items", ["media_id"])
    op.create_table(
        "share_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("right", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_share_grants_account_id", "share_grants", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_share_grants_account_id", table_name="share_grants")
    op.drop_table("share_grants")
    op.drop_index("ix_share_items_media_id", table_name="share_items")
    op.drop_index("ix_share_items_share_id", table_name="share_items")
    op.drop_table("share_items")
    op.drop_index("ix_shares_created_by", table_name="shares")
    op.drop_index("ix_shares_case_id", table_name="shares")
    op.drop_table("shares")
