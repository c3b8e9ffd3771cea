"""Inspections in a period against the footage linked to them.

For each inspection: is the window covered (reports.windows), how many officers'
playable footage is linked (two are required), how many officers the case lists.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from catalog.models import Case, CaseOfficer, Media, MediaLink, Officer, Unit
from reports.context import Context
from reports.numbers import round_half_up
from reports.periods import in_period, local_iso
from reports.sqltime import json_text_contains
from reports.windows import window_coverage


def inspection_rows(session: Session, ctx: Context) -> list[dict[str, Any]]:
    wanted = and_(Case.kind == "inspection", in_period(Case.start, ctx.period))
    cases = session.execute(
        select(Case.id, Case.case_no, Case.record_id, Case.enterprise, Case.start, Case.end, Unit.code.label("unit"),
               Case.unit_id, Case.fewer_than_two_officers)
        .outerjoin(Unit, Unit.id == Case.unit_id).where(wanted).order_by(Case.start, Case.case_no)
    ).all()
    cases = [c for c in cases if ctx.scope.covers(c.unit_id)]
    assigned: dict[int, list[str]] = defaultdict(list)
    for case_id, badge in session.execute(
            select(CaseOfficer.case_id, Officer.badge).join(Case, Case.id == CaseOfficer.case_id)
            .join(Officer, Officer.id == CaseOfficer.officer_id).where(wanted).order_by(Officer.badge)):
        assigned[case_id].append(badge)
    footage = _linked_footage(session, wanted)
    return [_row(c, assigned.get(c.id, []), footage.get(c.id, []), ctx) for c in cases]


def one_officer(row: dict[str, Any]) -> bool:
    """The enforcement record names fewer than two officers (行政处罚法 Art. 42): marked at import,
    or fewer than two officers on the case however it got into the catalog."""
    return bool(row["one_officer"])


def _linked_footage(session: Session, wanted: Any) -> dict[int, list[Any]]:
    rows = session.execute(
        select(MediaLink.case_id, Media.recorded_start, Media.recorded_end, Media.duration_seconds,
               Media.officer_id, Media.officer_badge, json_text_contains(Media.flags, "unplayable").label("bad"))
        .join(Media, Media.id == MediaLink.media_id).join(Case, Case.id == MediaLink.case_id)
        .where(MediaLink.active.is_(True), wanted)
    ).all()
    out: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        out[r.case_id].append(r)
    return out


def _row(c: Any, assigned_badges: list[str], footage: list[Any], ctx: Context) -> dict[str, Any]:
    # Unplayable or untimed footage proves nothing: it neither covers nor counts as a recorder.
    usable = [f for f in footage if f.recorded_start is not None and not f.bad]
    pieces = [(f.recorded_start, end_of(f.recorded_start, f.recorded_end, f.duration_seconds)) for f in usable]
    # An inspection with no end time is checked at its start instant.
    end = c.end if c.end is not None and c.end >= c.start else c.start
    cov = window_coverage(c.start, end, pieces, ctx.rules.tolerance)
    officers = {f.officer_id or f.officer_badge for f in usable if f.officer_id or f.officer_badge}
    badges = sorted({f.officer_badge for f in usable if f.officer_badge})
    return {
        "case_no": c.case_no, "record_id": c.record_id, "enterprise": c.enterprise, "unit": c.unit,
        "start": local_iso(c.start, ctx.tz), "end": local_iso(c.end, ctx.tz),
        "assigned_officers": len(assigned_badges), "officers": ", ".join(assigned_badges),
        "one_officer": bool(c.fewer_than_two_officers) or len(assigned_badges) < 2,
        "linked_recordings": len(footage), "status": cov.status,
        "covered_share": cov.share, "largest_gap_minutes": round_half_up(cov.largest_gap_seconds / 60, 1),
        "recording_officers": len(officers), "badges": ", ".join(badges),
    }


def end_of(start: datetime, end: datetime | None, duration: float | None) -> datetime:
    """A recording's end: as recorded, else start plus duration."""
    if end is not None:
        return end
    return start + timedelta(seconds=duration or 0.0)
