"""Changes a reviewer makes from the browser: link, unlink, resolve a review item.

The linking rules live in `cases.linking` (a manual link supersedes automatic ones
and closes open review items; an unlink is a ruling that automatic linking honours),
so the browser and `custody link ...` behave the same.  Those functions write the
custody events; the web adds a `web_action` event beside each with the remote
address, because the custody log must say where a change came from.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import CustodyError, NotFound
from cases import linking
from catalog.models import Case, Media, MediaLink, ReviewItem, utcnow
from web import trail
from web.auth import Viewer
from web.i18n import tagged


def _reason(text: str) -> str:
    reason = (text or "").strip()
    if len(reason) < 2:
        raise tagged(CustodyError("a reason is required (say why, for the next reader of the case)"), "error.reason_required")
    return reason[:2000]


def find_case(s: Session, case_no: str) -> Case:
    return linking.find_case(s, case_no)


def link(s: Session, viewer: Viewer, media: Media, case: Case, reason: str) -> MediaLink:
    row = linking.manual_link(s, media, case, viewer.username, _reason(reason))
    trail.record(s, viewer, "web_action", media_id=media.id, subject=f"case:{case.case_no}",
                 detail={"did": "linked", "link_id": row.id})
    return row


def unlink(s: Session, viewer: Viewer, row: MediaLink, reason: str) -> None:
    if not row.active:
        raise tagged(CustodyError(f"link {row.id} was already removed"), "error.link_removed", id=row.id)
    media, case = s.get(Media, row.media_id), s.get(Case, row.case_id)
    if media is None or case is None:
        raise NotFound(f"link {row.id} points at a missing recording or case")
    ruling, removed = linking.manual_unlink(s, media, case, viewer.username, _reason(reason))
    trail.record(s, viewer, "web_action", media_id=media.id, subject=f"case:{case.case_no}",
                 detail={"did": "unlinked", "link_id": row.id, "ruling_id": ruling.id, "removed": removed})


def resolve_review(s: Session, viewer: Viewer, item: ReviewItem, case_no: str, reason: str) -> None:
    """Link to the chosen case (which closes the item), or to none; the reason goes with it."""
    why = _reason(reason)
    if item.state != "open":
        raise tagged(CustodyError(f"review item {item.id} is already resolved"), "error.review_resolved", id=item.id)
    media = s.get(Media, item.media_id)
    if media is None:
        raise NotFound(f"recording {item.media_id} is missing")
    if case_no.strip():
        link(s, viewer, media, find_case(s, case_no), why)
        if item.state == "open":  # manual_link closes open items; make sure this one is
            _close(s, viewer, item, f"linked to {case_no.strip()}: {why}")
        return
    _close(s, viewer, item, f"no case: {why}")


def _close(s: Session, viewer: Viewer, item: ReviewItem, resolution: str) -> None:
    item.state = "resolved"
    item.resolved_by = viewer.username
    item.resolved_at = utcnow()
    item.resolution = resolution
    trail.record(s, viewer, "review_resolved", media_id=item.media_id, subject=f"review:{item.id}",
                 detail={"resolution": resolution})
