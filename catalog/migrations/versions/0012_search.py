"""issue 14: search indexes

Trigram indexes for the reviewer's substring search over case numbers, record ids and
enterprise names: PostgreSQL pg_trgm GIN indexes, SQLite an FTS5 trigram table kept by
triggers (catalog/search_index.py).  Where the database cannot build them (no privilege to
create the extension, SQLite without FTS5) nothing is created and search keeps scanning.

Revision ID: 0012_search
Revises: 0011_shares
"""
from __future__ import annotations

from alembic import op

from catalog import search_index

revision = "0012_search"
down_revision = "0011_shares"
branch_labels = None
depends_on = None


def upgrade() -> None:
    search_index.install(op.get_bind())


def downgrade() -> None:
    search_index.drop(op.get_bind())
