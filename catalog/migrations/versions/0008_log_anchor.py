"""issue 17: custody log checkpoints, object records, backups

Per-event station signatures (append-only like the events) and the anchor row naming the
chain this catalog holds.  Checkpoints, object records and backups live in the store.

Revision ID: 0008_log_anchor
Revises: 0007_field_upload
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

import catalog.models

revision = "0008_log_anchor"
down_revision = "0007_field_upload"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custody_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("sig", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_custody_signatures_seq", "custody_signatures", ["seq"])
    op.create_table(
        "custody_log_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.String(length=32), nullable=False),
        sa.Column("signed_from", sa.BigInteger(), nullable=False),
        sa.Column("created_at", catalog.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    bind = op.get_bind()
    head = bind.execute(sa.text("SELECT seq FROM custody_chain_head WHERE id = 1")).scalar() or 0
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # instants are stored as naive UTC
    bind.execute(sa.text("INSERT INTO custody_log_anchor (id, chain_id, signed_from, created_at) "
                         "VALUES (1, :c, :f, :t)"), {"c": uuid.uuid4().hex, "f": head + 1, "t": now})
    if bind.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER custody_signatures_no_{verb.lower()} BEFORE {verb} ON custody_signatures "
                       "BEGIN SELECT RAISE(ABORT, 'custody log is append-only'); END")
    elif bind.dialect.name == "postgresql":
        # custody_events_append_only() exists since 0002
        op.execute("CREATE TRIGGER custody_signatures_append_only BEFORE UPDATE OR DELETE ON custody_signatures "
                   "FOR EACH ROW EXECUTE FUNCTION custody_events_append_only()")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS custody_signatures_no_update")
        op.execute("DROP TRIGGER IF EXISTS custody_signatures_no_delete")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS custody_signatures_append_only ON custody_signatures")
    op.drop_table("custody_log_anchor")
    op.drop_index("ix_custody_signatures_seq", table_name="custody_signatures")
    op.drop_table("custody_signatures")
