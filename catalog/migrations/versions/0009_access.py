"""issue 17: MFA, access review, rate limits

Accounts gain the second factor (TOTP secret, last accepted step, recovery code hashes),
when and why they were disabled, and their last login; login sessions can wait for the
second factor; wrong passwords are counted per (account, remote address).

Revision ID: 0009_access
Revises: 0008_log_anchor
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import catalog.models

revision = "0009_access"
down_revision = "0008_log_anchor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as b:
        b.add_column(sa.Column("disabled_at", catalog.models.UTCDateTime(), nullable=True))
        b.add_column(sa.Column("disabled_reason", sa.String(200), nullable=True))
        b.add_column(sa.Column("last_login_at", catalog.models.UTCDateTime(), nullable=True))
        b.add_column(sa.Column("totp_secret", sa.String(64), nullable=True))
        b.add_column(sa.Column("totp_enrolled_at", catalog.models.UTCDateTime(), nullable=True))
        b.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("recovery_codes", sa.JSON(), nullable=True))
    with op.batch_alter_table("login_sessions") as b:
        b.add_column(sa.Column("mfa_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", catalog.models.UTCDateTime(), nullable=False),
        sa.Column("locked_until", catalog.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username", "remote_addr", name="uq_login_failures_pair"),
    )
    op.create_index("ix_login_failures_username", "login_failures", ["username"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_username", table_name="login_failures")
    op.drop_table("login_failures")
    with op.batch_alter_table("login_sessions") as b:
        b.drop_column("mfa_pending")
    with op.batch_alter_table("accounts") as b:
        for col in ("recovery_codes", "totp_last_step", "totp_enrolled_at", "totp_secret", "last_login_at",
                    "disabled_reason", "disabled_at"):
            b.drop_column(col)
