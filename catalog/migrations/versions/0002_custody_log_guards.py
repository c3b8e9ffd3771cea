"""custody log guards: append-only triggers and the chain head row

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    bind = op.get_bind()
    op.execute(f"INSERT INTO custody_chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')")
    if bind.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER custody_events_no_{verb.lower()} BEFORE {verb} ON custody_events "
                "BEGIN SELECT RAISE(ABORT, 'custody log is append-only'); END"
            )
    elif bind.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION custody_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'custody log is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER custody_events_append_only BEFORE UPDATE OR DELETE ON custody_events "
            "FOR EACH ROW EXECUTE FUNCTION custody_events_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS custody_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS custody_events_no_delete")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS custody_events_append_only ON custody_events")
        op.execute("DROP FUNCTION IF EXISTS custody_events_append_only()")
    op.execute("DELETE FROM custody_chain_head")
