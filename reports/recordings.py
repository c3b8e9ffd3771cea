"""Recordings in a period: upload timeliness, still unlinked, unplayable.

Counting is done by the database in one aggregate pass (a year is ~50,000 rows);
only the recordings a list names are fetched, and only when the lists are wanted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from typing import Any

from sqlalchemy import Integer, and_, case, cast, exists, false, func, not_, or_, select, true
from sqlalchemy.orm import Session

from catalog.models import Media, MediaLink
from reports.context import Context
from reports.inspections import end_of
from reports.numbers import round_half_up
from reports.periods import in_period, local_iso
from reports.sqltime import epoch_seconds, json_text_contains, local_text


@dataclass(frozen=True)
class RecordingCounts:
    recordings: int
    timed: int  # with a dock time, so a delay is known
    late: int
    unlinked: int
    unplayable: int

    @property
    def untimed(self) -> int:
        return self.recordings - self.timed


class Expressions:
    """The SQL pieces every query here shares, built once per report."""

    def __init__(self, ctx: Context) -> None:
        d = ctx.dialect
        self.end = func.coalesce(epoch_seconds(Media.recorded_end, d),
                                 epoch_seconds(Media.recorded_start, d) + func.coalesce(Media.duration_seconds, 0.0))
        self.delay = epoch_seconds(Media.docked_at, d) - self.end  # seconds from recording end to dock
        self.late = and_(Media.docked_at.is_not(None), self.delay > ctx.rules.deadline.total_seconds())
        # Unlinked N days after docking (a recording never docked counts from its end).
        self.since = func.coalesce(epoch_seconds(Media.docked_at, d), self.end)
        now = ctx.now.astimezone(timezone.utc).timestamp()
        self.age_days = (now - self.since) / 86400.0
        linked = exists().where(MediaLink.media_id == Media.id, MediaLink.active.is_(True))
        self.unlinked = and_(not_(linked), self.since < now - ctx.rules.unlinked.total_seconds())
        self.unplayable = json_text_contains(Media.flags, "unplayable")
        # Redacted copies are disclosures of a recording, not recordings of their own.
        self.where = and_(in_period(Media.recorded_start, ctx.period), Media.derived_from.is_(None), _scope(ctx))


def _scope(ctx: Context) -> Any:
    """A recording belongs to its device's unit; without one, to the unit it was docked under."""
    if ctx.scope.root is None:
        return true()
    in_scope = [i for i, d in ctx.devices.items() if ctx.scope.covers(d["unit_id"])]
    unitless = [i for i, d in ctx.devices.items() if d["unit_id"] is None]
    by_code = and_(or_(Media.device_id.is_(None), Media.device_id.in_(unitless) if unitless else false()),
                   Media.unit_code.in_(sorted(ctx.scope.unit_codes)))
    return or_(Media.device_id.in_(in_scope) if in_scope else false(), by_code)


def _count(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def recording_counts(session: Session, x: Expressions) -> RecordingCounts:
    row = session.execute(
        select(func.count(), _count(Media.docked_at.is_not(None)), _count(x.late), _count(x.unlinked),
               _count(x.unplayable)).select_from(Media).where(x.where)
    ).one()
    return RecordingCounts(*(int(v or 0) for v in row))


def delay_histogram(session: Session, x: Expressions, cap_hours: int) -> list[int]:
    """Recordings per whole hour of upload delay, 0..cap (the last bucket takes everything later)."""
    bucket = cast(x.delay / 3600.0, Integer)
    counts = [0] * (cap_hours + 1)
    for hour, n in session.execute(
        select(bucket, func.count()).select_from(Media).where(x.where, Media.docked_at.is_not(None)).group_by(bucket)
    ).all():
        counts[min(max(int(hour or 0), 0), cap_hours)] += n
    return counts


def _list_columns(ctx: Context) -> tuple[Any, ...]:
    """Columns every recording list shows; instants come back as local text (see local_text)."""
    tz, d = ctx.tz, ctx.dialect
    return (Media.id, Media.original_name, Media.device_id, Media.officer_badge, Media.device_start_text,
            local_text(Media.recorded_start, tz, d).label("start_text"),
            local_text(Media.docked_at, tz, d).label("docked_text"), Media.status)


def _row(r: Any, serials: dict[int, str]) -> dict[str, Any]:
    return {
        "media_id": r.id, "recording": r.original_name, "device": serials.get(r.device_id),
        "badge": r.officer_badge, "device_start_text": r.device_start_text, "recorded_start": r.start_text,
        "docked_at": r.docked_text, "status": r.status,
    }


def _serials(ctx: Context) -> dict[int, str]:
    return {i: d["serial"] for i, d in ctx.devices.items()}


def late_rows(session: Session, ctx: Context, x: Expressions) -> list[dict[str, Any]]:
    rows = session.execute(
        select(*_list_columns(ctx), Media.recorded_start, Media.recorded_end, Media.duration_seconds,
               x.delay.label("delay"))
        .where(x.where, x.late).order_by(x.delay.desc(), Media.id)
    ).all()
    serials = _serials(ctx)
    out = []
    for r in rows:
        end = end_of(r.recorded_start, r.recorded_end, r.duration_seconds) if r.recorded_start else r.recorded_end
        out.append({**_row(r, serials), "recorded_end": local_iso(end, ctx.tz),
                    "delay_hours": round_half_up(r.delay / 3600, 2)})
    return out


def unlinked_rows(session: Session, ctx: Context, x: Expressions) -> list[dict[str, Any]]:
    rows = session.execute(
        select(*_list_columns(ctx), x.age_days.label("age")).where(x.where, x.unlinked)
        .order_by(Media.recorded_start, Media.id)
    ).all()
    serials = _serials(ctx)
    return [{**_row(r, serials), "days_unlinked": round_half_up(r.age, 1)} for r in rows]


def unplayable_rows(session: Session, ctx: Context, x: Expressions) -> list[dict[str, Any]]:
    rows = session.execute(
        select(*_list_columns(ctx), Media.flag_reasons).where(x.where, x.unplayable)
        .order_by(Media.recorded_start, Media.id)
    ).all()
    serials = _serials(ctx)
    return [{**_row(r, serials), "reason": (r.flag_reasons or {}).get("unplayable")} for r in rows]
