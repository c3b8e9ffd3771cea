"""issue 15: device tokens, API tokens, field uploads

Revision ID: 0007_field_upload
Revises: 0006_stations
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_field_upload"
down_revision = "0006_stations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("device_id", sa.Integer(), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_device_tokens_device_id", "device_tokens", ["device_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_api_tokens_account_id", "api_tokens", ["account_id"])
    op.create_table(
        "field_uploads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("upload_id", sa.String(64), nullable=False, unique=True),
        sa.Column("device_id", sa.Integer(), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("device_tokens.id"), nullable=False),
        sa.Column("station", sa.String(64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("upload_meta", sa.JSON(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("recorded_at_text", sa.String(64), nullable=True),
        sa.Column("client_sha256", sa.String(64), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="receiving"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("dock_sessions.id"), nullable=True),
        sa.Column("media_id", sa.Integer(), sa.ForeignKey("media.id"), nullable=True),
    )
    op.create_index("ix_field_uploads_device_id", "field_uploads", ["device_id"])
    op.create_index("ix_field_uploads_station", "field_uploads", ["station"])
    op.create_index("ix_field_uploads_sha256", "field_uploads", ["sha256"])
    op.create_index("ix_field_uploads_state", "field_uploads", ["state"])
    with op.batch_alter_table("dock_sessions") as b:
        b.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="dock"))


def downgrade() -> None:
    with op.batch_alter_table("dock_sessions") as b:
        b.drop_column("kind")
    op.drop_table("field_uploads")
    op.drop_table("api_tokens")
    op.drop_table("device_tokens")
