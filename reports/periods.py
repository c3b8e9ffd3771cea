"""Report dates: local calendar days (the station's UTC offset) turned into UTC instants.

Administrators think in local days ("2021-01-01 to 2021-12-31"); the catalog stores
UTC.  A period is the half-open instant range [first day 00:00, day after last 00:00)
in the station's zone, so an inspection at 2021-12-31 23:30 +08:00 (15:30 UTC) is in
2021 and one at 2022-01-01 00:10 +08:00 (2021-12-31 16:10 UTC) is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_

from core.errors import CustodyError


def parse_day(text: str, what: str = "date") -> date:
    """'2021-07-01' -> date.  Anything else is refused with the expected shape."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError as e:
        raise CustodyError(f"{what} {text!r} is not a date like 2021-07-01") from e


def day_start(d: date, tz: timezone) -> datetime:
    """00:00 local on `d`, as a UTC instant."""
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(timezone.utc)


def local_today(tz: timezone, now: datetime | None = None) -> date:
    return (now or datetime.now(timezone.utc)).astimezone(tz).date()


@dataclass(frozen=True)
class Period:
    """Local days first..last inclusive; `first` None means "from the beginning"."""

    first: date | None
    last: date
    tz: timezone

    @classmethod
    def of(cls, first: date | None, last: date, tz: timezone) -> Period:
        if first is not None and first > last:
            raise CustodyError(f"the period starts ({first}) after it ends ({last})")
        return cls(first, last, tz)

    @property
    def start_utc(self) -> datetime | None:
        return day_start(self.first, self.tz) if self.first else None

    @property
    def end_utc(self) -> datetime:
        """Exclusive end: local midnight after the last day."""
        return day_start(self.last + timedelta(days=1), self.tz)

    def describe(self) -> dict[str, str | None]:
        return {
            "from": self.first.isoformat() if self.first else None,
            "to": self.last.isoformat(),
            "timezone": offset_text(self.tz),
            "start_utc": self.start_utc.isoformat() if self.start_utc else None,
            "end_utc_exclusive": self.end_utc.isoformat(),
        }


def offset_text(tz: timezone) -> str:
    """timezone(+8h) -> 'UTC+08:00'."""
    off = tz.utcoffset(None) or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_iso(instant: datetime | None, tz: timezone) -> str | None:
    """A UTC instant shown in the station's zone, seconds precision, offset included."""
    if instant is None:
        return None
    return instant.astimezone(tz).isoformat(timespec="seconds")


def in_period(col: Any, period: Period) -> Any:
    """SQL condition: the instant column falls in the period (NULLs never do)."""
    start = period.start_utc
    before_end = col < period.end_utc
    return and_(col >= start, before_end) if start is not None else and_(col.is_not(None), before_end)
