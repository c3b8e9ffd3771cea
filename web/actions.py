"""Changes a reviewer makes from the browser: link, unlink, resolve a review item.

Each change and its custody event land in one transaction; a reason is required
because the next reader of the case must know why a recording is (no longer) in it.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import CustodyError, NotFound
from indexer.catalog.models import Case, Media, MediaLink, ReviewItem, utcnow
from web import trail
from web.auth import Viewer


def _reason(text: str) -> str:
    reason = (text or "").strip()
    if len(reason) < 2:
        raise CustodyError("a reason is required (say why, for the next reader of the case)")
    return reason[:2000]


def find_case(s: Session, case_no: str) -> Case:
    case = s.execute(select(Case).where(Case.case_no == case_no.strip())).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case numbered {case_no!r}")
    return case


def link(s: Session, viewer: Viewer, media: Media, case: Case, reason: str) -> MediaLink:
    why = _reason(reason)
    existing = s.execute(select(MediaLink).where(MediaLink.media_id == media.id, MediaLink.case_id == case.id,
                                                 MediaLink.active.is_(True))).scalar_one_or_none()
    if existing is not None:
        raise CustodyError(f"recording {media.id} is already linked to case {case.case_no}")
    row = MediaLink(media_id=media.id, case_id=case.id, method="manual", score=1.0, reason=why,
                    created_by=viewer.username, created_at=utcnow())
    s.add(row)
    s.flush()
    trail.record(s, viewer, "linked", media_id=media.id, subject=f"case:{case.case_no}",
                 detail={"link_id": row.id, "method": "manual", "reason": why})
    return row


def unlink(s: Session, viewer: Viewer, row: MediaLink, reason: str) -> None:
    why = _reason(reason)
    if not row.active:
        raise CustodyError(f"link {row.id} was already removed")
    case = s.get(Case, row.case_id)
    row.active = False
    row.removed_by = viewer.username
    row.removed_at = utcnow()
    row.removed_reason = why
    trail.record(s, viewer, "unlinked", media_id=row.media_id, subject=f"case:{case.case_no if case else '?'}",
                 detail={"link_id": row.id, "method": row.method, "reason": why})


def resolve_review(s: Session, viewer: Viewer, item: ReviewItem, case_no: str, reason: str) -> None:
    """Link to the chosen case, or to none; either way the item leaves the queue with the reason."""
    why = _reason(reason)
    if item.state != "open":
        raise CustodyError(f"review item {item.id} is already resolved")
    media = s.get(Media, item.media_id)
    if media is None:
        raise NotFound(f"recording {item.media_id} is missing")
    if case_no.strip():
        link(s, viewer, media, find_case(s, case_no), f"review: {why}")
        resolution = f"linked to {case_no.strip()}: {why}"
    else:
        resolution = f"no case: {why}"
    item.state = "resolved"
    item.resolved_by = viewer.username
    item.resolved_at = utcnow()
    item.resolution = resolution
    trail.record(s, viewer, "review_resolved", media_id=media.id, subject=f"review:{item.id}",
                 detail={"case_no": case_no.strip() or None, "reason": why})
