"""Substring search over cases through a trigram index (issue 14).

The reviewer's search page matches any part of a case number, a record id or an enterprise
name (`ILIKE '%…%'`).  Without an index that reads every case (281 ms at 100,000 cases);
with one it reads only the cases sharing the typed text's trigrams:

* PostgreSQL: `pg_trgm` GIN indexes on cases.case_no, cases.record_id and cases.enterprise;
  the planner uses them for the ILIKE/LIKE predicates as written, nothing else changes.
* SQLite: an FTS5 table with the trigram tokenizer (`cases_search`, external content =
  `cases`, kept current by triggers).  The search narrows cases to the FTS5 candidates
  (`id IN (SELECT rowid … MATCH …)`) and keeps the original LIKE predicate on them, so the
  result is exactly what the scan gives (FTS5 folds Unicode case, SQLite's LIKE only ASCII:
  the candidates are a superset, the LIKE decides).

Either index may be missing (a PostgreSQL role that may not create the extension, an SQLite
built without FTS5): migration 0012 then skips it and the search falls back to the scan it
always did; `index_kind()` says which path a catalog takes.  Text shorter than three
characters has no trigram: it is scanned as well.
"""
from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Connection, Engine, column, select, table, text
from sqlalchemy.orm import Session

from catalog.models import Case

FTS_TABLE = "cases_search"
FTS_COLUMNS = ("case_no", "record_id", "enterprise")
PG_INDEXES = {c: f"ix_cases_{c}_trgm" for c in FTS_COLUMNS}
MIN_CHARS = 3  # a trigram index cannot narrow shorter text
_FTS = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))

_SQLITE_TRIGGERS = {
    "cases_search_ai": f"""CREATE TRIGGER cases_search_ai AFTER INSERT ON cases BEGIN
        INSERT INTO {FTS_TABLE}(rowid, case_no, record_id, enterprise)
        VALUES (new.id, new.case_no, new.record_id, new.enterprise); END""",
    "cases_search_ad": f"""CREATE TRIGGER cases_search_ad AFTER DELETE ON cases BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, case_no, record_id, enterprise)
        VALUES ('delete', old.id, old.case_no, old.record_id, old.enterprise); END""",
    "cases_search_au": f"""CREATE TRIGGER cases_search_au AFTER UPDATE OF case_no, record_id, enterprise ON cases BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, case_no, record_id, enterprise)
        VALUES ('delete', old.id, old.case_no, old.record_id, old.enterprise);
        INSERT INTO {FTS_TABLE}(rowid, case_no, record_id, enterprise)
        VALUES (new.id, new.case_no, new.record_id, new.enterprise); END""",
}


def install(conn: Connection) -> str | None:
    """Create the index for this catalog; returns its kind, or None when the database cannot
    (then searches scan, as before).  Idempotent: a later migration that rebuilds `cases` on
    SQLite (batch mode drops its triggers) calls `drop` then `install` again."""
    if conn.dialect.name == "postgresql":
        try:
            with conn.begin_nested():
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except Exception:  # noqa: BLE001 - no privilege / not installed: keep the scan
            return None
        for col, name in PG_INDEXES.items():
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON cases USING gin ({col} gin_trgm_ops)"))
        return "pg_trgm"
    if conn.dialect.name == "sqlite":
        try:
            with conn.begin_nested():
                conn.execute(text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
                                  f"{', '.join(FTS_COLUMNS)}, content='cases', content_rowid='id', "
                                  "tokenize='trigram')"))
        except Exception:  # noqa: BLE001 - SQLite built without FTS5 (or without its trigram tokenizer)
            return None
        for name, ddl in _SQLITE_TRIGGERS.items():
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            conn.execute(text(ddl))
        conn.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))
        return "fts5"
    return None


def drop(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        for name in PG_INDEXES.values():
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    elif conn.dialect.name == "sqlite":
        for name in _SQLITE_TRIGGERS:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {FTS_TABLE}"))


_KIND: weakref.WeakKeyDictionary[Engine, str | None] = weakref.WeakKeyDictionary()


def index_kind(session: Session) -> str | None:
    """'fts5', 'pg_trgm' or None (scan) for the session's catalog; looked up once per engine."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    if engine in _KIND:
        return _KIND[engine]
    if engine.dialect.name == "sqlite":
        found = session.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"),
                                {"n": FTS_TABLE}).first()
        kind = "fts5" if found else None
    elif engine.dialect.name == "postgresql":
        found = session.execute(text("SELECT count(*) FROM pg_indexes "
                                     "WHERE tablename = 'cases' AND indexname = ANY(:n)"),
                                {"n": list(PG_INDEXES.values())}).scalar()
        kind = "pg_trgm" if found == len(PG_INDEXES) else None
    else:
        kind = None
    _KIND[engine] = kind
    return kind


def forget(engine: Engine) -> None:
    """Look the index up again on next use (after a migration added or dropped it)."""
    _KIND.pop(engine, None)


def fts_query(needle: str, columns: tuple[str, ...]) -> str:
    """An FTS5 MATCH expression: `needle` as one literal string (quotes doubled; %, _ and \\ are
    plain characters inside it) in the given columns; with the trigram tokenizer it matches
    every row whose column contains it, case-insensitively."""
    return "{" + " ".join(columns) + "} : \"" + needle.replace('"', '""') + "\""


def candidates(session: Session, needle: str, columns: tuple[str, ...]) -> Any | None:
    """A SQL condition narrowing `cases` to rows that may contain `needle` in one of `columns`
    (a superset of the LIKE matches), or None when the index cannot help: no index (scan),
    PostgreSQL (its planner uses the trigram index for the LIKE itself), or text shorter than
    three characters."""
    if len(needle) < MIN_CHARS or index_kind(session) != "fts5":
        return None
    return Case.id.in_(select(_FTS.c.rowid).where(_FTS.c[FTS_TABLE].op("MATCH")(fts_query(needle, columns))))


def owns_table(name: str | None) -> bool:
    """The FTS5 table and its shadow tables: schema, not models (autogenerate leaves them alone)."""
    return bool(name) and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_"))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, _compare_to: Any) -> bool:
    """Alembic `include_object` hook: skip the search index's own tables."""
    return not (type_ == "table" and reflected and owns_table(name))
