"""Read-side queries for the reviewer pages: search, case timeline, recording details.

Plain ORM queries over the catalog, always narrowed to what the viewer may see.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from catalog import search_index
from catalog.accounts import Actor
from catalog.models import (
    Case,
    CaseOfficer,
    ClockCorrection,
    CustodyEvent,
    Derivative,
    Device,
    Media,
    MediaLink,
    Officer,
    ReviewItem,
    Unit,
)
from reports.inspections import end_of
from core.errors import CustodyError
from catalog.access import scope_cases, scope_media
from web.i18n import tagged

MAX_ROWS = 200
FRAME_KINDS = ("keyframe", "thumbnail")


@dataclass
class SearchForm:
    case_no: str = ""
    officer: str = ""
    device: str = ""
    enterprise: str = ""
    day: date | None = None
    unlinked: bool = False

    @property
    def empty(self) -> bool:
        return not (self.case_no or self.officer or self.device or self.enterprise or self.day or self.unlinked)

    @property
    def wants_media(self) -> bool:
        """Recordings are listed when the query is about people, devices, days or orphans."""
        return bool(self.officer or self.device or self.day or self.unlinked)


def parse_day(text: str) -> date | None:
    """A day typed into a form (YYYY-MM-DD); empty means none."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise tagged(CustodyError(f"date {text!r} is not YYYY-MM-DD"), "error.date", text=text) from e


def day_bounds(day: date, tz: timezone) -> tuple[datetime, datetime]:
    """A calendar day as users mean it (station time) -> UTC instants."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    return start, start + timedelta(days=1)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _officer_ids(text: str):  # noqa: ANN202 - SQL expression
    return select(Officer.id).where(or_(Officer.badge.ilike(_like(text), escape="\\"),
                                        Officer.name.ilike(_like(text), escape="\\")))


def search_cases(s: Session, actor: Actor, f: SearchForm, tz: timezone, *, use_index: bool = True) -> list[Case]:
    """`use_index=False` skips the SQLite FTS5 narrowing (tests compare both paths; the
    result is the same, only the time differs).  PostgreSQL's planner uses the pg_trgm
    indexes for the ILIKE predicates by itself (catalog/search_index.py)."""
    if f.unlinked and not (f.case_no or f.enterprise):
        return []
    q = select(Case)
    if f.case_no:
        # The case number (any part) or the enforcement system's record id (any part).
        q = q.where(or_(Case.case_no.ilike(_like(f.case_no), escape="\\"),
                        Case.record_id.ilike(_like(f.case_no), escape="\\")))
        narrowed = search_index.candidates(s, f.case_no, ("case_no", "record_id")) if use_index else None
        if narrowed is not None:
            q = q.where(narrowed)
    if f.enterprise:
        q = q.where(Case.enterprise.ilike(_like(f.enterprise), escape="\\"))
        narrowed = search_index.candidates(s, f.enterprise, ("enterprise",)) if use_index else None
        if narrowed is not None:
            q = q.where(narrowed)
    if f.officer:
        q = q.where(Case.id.in_(select(CaseOfficer.case_id).where(CaseOfficer.officer_id.in_(_officer_ids(f.officer)))))
    if f.device:
        q = q.where(Case.id.in_(select(MediaLink.case_id).join(Media, Media.id == MediaLink.media_id)
                                .join(Device, Device.id == Media.device_id)
                                .where(MediaLink.active.is_(True), Device.serial.ilike(_like(f.device), escape="\\"))))
    if f.day:
        lo, hi = day_bounds(f.day, tz)
        q = q.where(Case.start >= lo, Case.start < hi)
    q = scope_cases(q, actor).order_by(Case.start.desc().nulls_last(), Case.case_no).limit(MAX_ROWS)
    return list(s.execute(q).scalars())


def search_media(s: Session, actor: Actor, f: SearchForm, tz: timezone) -> list[Media]:
    if not f.wants_media:
        return []
    q = select(Media)
    if f.officer:
        q = q.where(or_(Media.officer_id.in_(_officer_ids(f.officer)),
                        Media.officer_badge.ilike(_like(f.officer), escape="\\")))
    if f.device:
        q = q.where(Media.device_id.in_(select(Device.id).where(Device.serial.ilike(_like(f.device), escape="\\"))))
    if f.day:
        lo, hi = day_bounds(f.day, tz)
        q = q.where(Media.recorded_start >= lo, Media.recorded_start < hi)
    if f.unlinked:
        q = q.where(~exists(select(MediaLink.id).where(MediaLink.media_id == Media.id, MediaLink.active.is_(True))))
    q = scope_media(q, actor).order_by(Media.recorded_start.desc().nulls_last(), Media.id).limit(MAX_ROWS)
    return list(s.execute(q).scalars())


# --------------------------------------------------------------------------- case page
@dataclass
class TimelineEntry:
    media: Media
    link: MediaLink
    frames: list[Derivative] = field(default_factory=list)
    left_pct: float = 0.0
    width_pct: float = 100.0


@dataclass
class CaseView:
    case: Case
    unit: Unit | None
    officers: list[Officer]
    entries: list[TimelineEntry]
    hidden: int  # linked recordings the viewer may not see
    follows_up: Case | None = None  # the inspection this one follows up (found by record id or case number)
    followed_by: list[Case] = field(default_factory=list)  # follow-ups (复查) of this case

    @property
    def lanes(self) -> list[str]:
        seen: list[str] = []
        for e in self.entries:
            if lane_of(e.media) not in seen:
                seen.append(lane_of(e.media))
        return seen


def lane_of(m: Media) -> str:
    """One timeline lane per officer and device pair."""
    who = m.officer.badge if m.officer else (m.officer_badge or "?")
    dev = m.device.serial if m.device else "?"
    return f"{who} · {dev}"


def frames_of(s: Session, media_ids: list[int]) -> dict[int, list[Derivative]]:
    out: dict[int, list[Derivative]] = {i: [] for i in media_ids}
    if not media_ids:
        return out
    rows = s.execute(select(Derivative).where(Derivative.media_id.in_(media_ids), Derivative.kind.in_(FRAME_KINDS),
                                              Derivative.purged_at.is_(None))
                     .order_by(Derivative.media_id, Derivative.offset_seconds.nulls_first(), Derivative.id)).scalars()
    for d in rows:
        out[d.media_id].append(d)
    # The strip shows keyframes; a thumbnail stands in only where there are none (photos, short clips).
    for media_id, frames in out.items():
        if any(d.kind == "keyframe" for d in frames):
            out[media_id] = [d for d in frames if d.kind == "keyframe"]
    return out


def case_view(s: Session, actor: Actor, case: Case) -> CaseView:
    unit = s.get(Unit, case.unit_id) if case.unit_id else None
    officers = list(s.execute(select(Officer).join(CaseOfficer, CaseOfficer.officer_id == Officer.id)
                              .where(CaseOfficer.case_id == case.id).order_by(Officer.badge)).scalars())
    links = s.execute(select(MediaLink, Media).join(Media, Media.id == MediaLink.media_id)
                      .where(MediaLink.case_id == case.id, MediaLink.active.is_(True))).all()
    visible_ids = set(s.execute(scope_media(select(Media.id).where(Media.id.in_([m.id for _, m in links])),
                                            actor)).scalars())
    entries = [TimelineEntry(media=m, link=link) for link, m in links if m.id in visible_ids]
    entries.sort(key=lambda e: (e.media.recorded_start or datetime.max.replace(tzinfo=timezone.utc), e.media.id))
    frames = frames_of(s, [e.media.id for e in entries])
    for e in entries:
        e.frames = frames[e.media.id]
    _place(entries)
    followed = None
    if case.follows_up:
        followed = s.execute(select(Case).where(or_(Case.record_id == case.follows_up,
                                                    Case.case_no == case.follows_up))
                             .order_by(Case.id).limit(1)).scalar_one_or_none()
    refs = [case.case_no] + ([case.record_id] if case.record_id else [])
    followed_by = list(s.execute(select(Case).where(Case.follows_up.in_(refs)).order_by(Case.start, Case.case_no))
                       .scalars())
    return CaseView(case=case, unit=unit, officers=officers, entries=entries, hidden=len(links) - len(entries),
                    follows_up=followed, followed_by=followed_by)


def _place(entries: list[TimelineEntry]) -> None:
    """Position each recording on a shared time axis (percent of the span covered)."""
    spans = [(e, m.recorded_start, end_of(m.recorded_start, m.recorded_end, m.duration_seconds))
             for e in entries if (m := e.media).recorded_start]
    if not spans:
        return
    lo = min(a for _, a, _ in spans)
    hi = max(b for _, _, b in spans)
    total = max((hi - lo).total_seconds(), 1.0)
    for e, a, b in spans:
        e.left_pct = round(100 * (a - lo).total_seconds() / total, 2)
        e.width_pct = max(round(100 * (b - a).total_seconds() / total, 2), 0.5)


# --------------------------------------------------------------------------- recording page
@dataclass
class MediaView:
    media: Media
    links: list[tuple[MediaLink, Case]]
    corrections: list[ClockCorrection]
    frames: list[Derivative]
    trail: list[CustodyEvent]
    reviews: list[ReviewItem]


def media_view(s: Session, media: Media) -> MediaView:
    links = [(link, case) for link, case in s.execute(
        select(MediaLink, Case).join(Case, Case.id == MediaLink.case_id)
        .where(MediaLink.media_id == media.id).order_by(MediaLink.created_at)).all()]
    corrections: list[ClockCorrection] = []
    if media.device_id:
        corrections = list(s.execute(select(ClockCorrection).where(ClockCorrection.device_id == media.device_id)
                                     .order_by(ClockCorrection.valid_from)).scalars())
    trail = list(s.execute(select(CustodyEvent).where(CustodyEvent.media_id == media.id)
                           .order_by(CustodyEvent.seq)).scalars())
    reviews = list(s.execute(select(ReviewItem).where(ReviewItem.media_id == media.id)
                             .order_by(ReviewItem.created_at)).scalars())
    return MediaView(media=media, links=links, corrections=corrections, frames=frames_of(s, [media.id])[media.id],
                     trail=trail, reviews=reviews)
