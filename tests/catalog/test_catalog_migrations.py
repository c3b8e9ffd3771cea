"""The Alembic migrations build exactly the schema the ORM models describe, on both catalogs:
a column added to a model without a migration (or the other way round) fails here."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from catalog import search_index
from catalog.db import Catalog
from catalog.models import Base


def _real(diff: object) -> bool:
    # Type comparisons differ harmlessly between dialects (JSON vs TEXT on SQLite); names,
    # tables and columns must match.
    op = diff[0] if isinstance(diff, tuple) else diff[0][0]  # type: ignore[index]
    return op in ("add_table", "remove_table", "add_column", "remove_column")


def test_migrations_match_the_models(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    try:
        with cat.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(
                conn, opts={"include_object": search_index.include_object}), Base.metadata)  # FTS5 tables: issue 14
        assert [d for d in diffs if _real(d)] == []
    finally:
        cat.engine.dispose()
