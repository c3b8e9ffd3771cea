"""Instant arithmetic inside SQL, on both catalogs.

The catalog stores naive UTC (UTCDateTime).  Seconds since the epoch let the
database compare "docked_at minus recording end" with a deadline for 50,000 rows
without sending them all to Python.
"""
from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from sqlalchemy import Float, String, cast, extract, func, literal, text


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


def local_text(col: Any, tz: timezone, dialect: str) -> Any:
    """SQL expression: the instant as ISO 8601 text in the station's zone, to the second.

    Same text as reports.periods.local_iso, made by the database: long lists (tens of
    thousands of recordings) then skip a Python datetime per cell.
    """
    offset = tz.utcoffset(None) or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    suffix = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if dialect == "sqlite":
        shifted = func.strftime("%Y-%m-%dT%H:%M:%S", col, f"{minutes:+d} minutes")
    else:
        shifted = func.to_char(col + text(f"interval '{minutes} minutes'"), 'YYYY-MM-DD"T"HH24:MI:SS')
    # NULL stays NULL: concatenation with NULL is NULL on both.
    return shifted.concat(literal(suffix))
