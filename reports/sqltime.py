"""Instant arithmetic inside SQL, on both catalogs.

The catalog stores naive UTC (UTCDateTime).  Seconds since the epoch let the
database compare "docked_at minus recording end" with a deadline for 50,000 rows
without sending them all to Python.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String, cast, extract, func


def epoch_seconds(col: Any, dialect: str) -> Any:
    """SQL expression: the column's instant as seconds since 1970-01-01 UTC."""
    if dialect == "sqlite":
        # julianday() reads SQLAlchemy's 'YYYY-MM-DD HH:MM:SS.ffffff' text; 2440587.5 is the epoch.
        return (func.julianday(col) - 2440587.5) * 86400.0
    # PostgreSQL: the column is timestamp without time zone holding UTC, so epoch is exact.
    return cast(extract("epoch", col), Float)


def json_text_contains(col: Any, item: str) -> Any:
    """SQL condition: a JSON list column holds the string `item` (as written by json.dumps)."""
    return cast(col, String).like(f'%"{item}"%')
