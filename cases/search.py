"""Search recordings by case, officer, device, enterprise, time and link state.

One row per recording and active case link, in time order (recordings without a
corrected time last); an unlinked recording appears once with no case.  Queries are
shaped for the catalog's indexes: case number -> media_links(case_id); officer + day ->
media(officer_id, recorded_start); device + day -> media(device_id, recorded_start).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from core.errors import CustodyError, NotFound
from catalog import search_index
from catalog.models import Case, Device, Media, MediaLink, Officer


@dataclass(frozen=True)
class SearchRow:
    id: int
    sha256: str
    case: str | None
    officer: str | None
    device: str | None
    recorded_start: datetime | None
    recorded_end: datetime | None
    duration_seconds: float | None
    link_method: str | None
    link_reason: str | None
    flags: list[str]

    def as_json(self, tz: tzinfo) -> dict[str, Any]:
        return {
            "id": self.id, "sha256": self.sha256, "case": self.case, "officer": self.officer,
            "device": self.device,
            "recorded_start": self.recorded_start.astimezone(tz).isoformat() if self.recorded_start else None,
            "recorded_end": self.recorded_end.astimezone(tz).isoformat() if self.recorded_end else None,
            "link_method": self.link_method, "link_reason": self.link_reason, "flags": self.flags,
        }

    @property
    def duration(self) -> float | None:
        if self.duration_seconds is not None:
            return self.duration_seconds
        if self.recorded_start and self.recorded_end:
            return (self.recorded_end - self.recorded_start).total_seconds()
        return None


@dataclass(frozen=True)
class Criteria:
    case_no: str | None = None
    officer: str | None = None  # badge
    device: str | None = None  # serial
    enterprise: str | None = None  # part of the enterprise name
    start: datetime | None = None  # recordings starting at or after (aware)
    end: datetime | None = None  # ... and before (aware, exclusive)
    unlinked: bool = False
    limit: int | None = 1000
    use_index: bool = True  # False: no FTS5 narrowing (same rows; tests compare both paths)


def parse_when(text: str, tz: tzinfo, *, end_of_day: bool = False) -> datetime:
    """'2026-11-28' (a local day; as an upper bound, the whole day) or a local/offset time."""
    t = text.strip().replace("/", "-")
    try:
        if len(t) == 10:
            d = date.fromisoformat(t)
            return datetime.combine(d + timedelta(days=1) if end_of_day else d, time(), tz)
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise CustodyError(f"{text!r} is not a date (2026-11-28) or time (2026-11-28T09:30)") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=tz)).astimezone(timezone.utc)


def _id_of(session: Session, model: type, col: Any, value: str, what: str) -> int:
    found = session.execute(select(model.id).where(col == value)).scalar_one_or_none()  # type: ignore[attr-defined]
    if found is None:
        raise NotFound(f"no {what} {value!r}")
    return found


def _base(link_join: str) -> Select[Any]:
    q = select(Media.id, Media.sha256, Case.case_no, Officer.badge, Media.officer_badge, Device.serial,
               Media.recorded_start, Media.recorded_end, Media.duration_seconds, MediaLink.method,
               MediaLink.reason, Media.flags, Media.status).select_from(Media)
    on_link = and_(MediaLink.media_id == Media.id, MediaLink.active.is_(True))
    if link_join == "inner":
        q = q.join(MediaLink, on_link).join(Case, Case.id == MediaLink.case_id)
    else:
        q = q.outerjoin(MediaLink, on_link).outerjoin(Case, Case.id == MediaLink.case_id)
    return q.outerjoin(Officer, Officer.id == Media.officer_id).outerjoin(Device, Device.id == Media.device_id)


def build_query(session: Session, c: Criteria) -> Select[Any]:
    if c.unlinked and (c.case_no or c.enterprise):
        raise CustodyError("--unlinked cannot be combined with --case or --enterprise")
    q = _base("inner" if (c.case_no or c.enterprise) else "outer")
    if c.case_no:
        # The case number or the enforcement system's record id; an unknown case is told apart after.
        q = q.where(or_(Case.case_no == c.case_no, Case.record_id == c.case_no))
    if c.enterprise:
        needle = c.enterprise.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(Case.enterprise.like(f"%{needle}%", escape="\\"))
        # SQLite: narrowed through the FTS5 trigram index first (PostgreSQL's planner uses pg_trgm itself).
        narrowed = search_index.candidates(session, c.enterprise.strip(), ("enterprise",)) if c.use_index else None
        if narrowed is not None:
            q = q.where(narrowed)
    if c.officer:
        oid = session.execute(select(Officer.id).where(Officer.badge == c.officer)).scalar_one_or_none()
        # A badge not in the register can still be on recordings, as read from the device.
        q = q.where(Media.officer_id == oid) if oid is not None else q.where(Media.officer_badge == c.officer)
    if c.device:
        q = q.where(Media.device_id == _id_of(session, Device, Device.serial, c.device, "device"))
    if c.start:
        q = q.where(Media.recorded_start >= c.start)
    if c.end:
        q = q.where(Media.recorded_start < c.end)
    if c.unlinked:
        other = aliased(MediaLink)  # the outer join found no active link; say so without a join fan-out
        q = q.where(MediaLink.id.is_(None), ~exists().where(other.media_id == Media.id, other.active.is_(True)))
    q = q.order_by(Media.recorded_start.asc().nulls_last(), Media.id, Case.case_no)
    return q.limit(c.limit) if c.limit else q


def search(session: Session, criteria: Criteria, scope: Any = None) -> list[SearchRow]:
    """`scope`: an optional SQL condition on Media limiting what the caller may see."""
    q = build_query(session, criteria)
    rows = session.execute(q if scope is None else q.where(scope)).all()
    if not rows and criteria.case_no:
        # NotFound rather than "no rows"
        if session.execute(select(Case.id).where(or_(Case.case_no == criteria.case_no,
                                                     Case.record_id == criteria.case_no))).first() is None:
            raise NotFound(f"no case {criteria.case_no!r} (neither a case number nor a record id)")
    out: list[SearchRow] = []
    for r in rows:
        flags = list(r.flags or [])
        if r.status == "purged" and "purged" not in flags:
            flags.append("purged")
        out.append(SearchRow(id=r.id, sha256=r.sha256, case=r.case_no, officer=r.badge or r.officer_badge,
                             device=r.serial, recorded_start=r.recorded_start, recorded_end=r.recorded_end,
                             duration_seconds=r.duration_seconds, link_method=r.method, link_reason=r.reason,
                             flags=flags))
    return out
