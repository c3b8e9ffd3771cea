"""Auditors read the custody log and filter it (who, what, outcome, recording, when)."""
from __future__ import annotations


from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from catalog.app import App
from core.errors import CustodyError
from catalog.models import CustodyEvent
from web import trail
from web.auth import Viewer, allow
from web.guard import MAX_SEQ, valid_id
from web.i18n import tagged
from web.pages import render
from web.queries import day_bounds, parse_day

router = APIRouter()
PAGE = 200


@router.get("/audit")
def audit(request: Request, actor: str = "", action: str = "", outcome: str = "", media_id: str = "",
          subject: str = "", remote_addr: str = "", since: str = "", until: str = "", before: int | None = None,
          viewer: Viewer = Depends(allow("audit"))) -> Response:
    """Newest first, PAGE events per page; `before` (a seq) pages back."""
    app: App = request.app.state.custody
    q = select(CustodyEvent)
    if actor.strip():
        q = q.where(CustodyEvent.actor == actor.strip())
    if action.strip():
        q = q.where(CustodyEvent.action == action.strip())
    if outcome.strip():
        q = q.where(CustodyEvent.outcome == outcome.strip())
    if media_id.strip():
        if not media_id.strip().isdigit() or len(media_id.strip()) > 10 or not valid_id(int(media_id.strip())):
            raise tagged(CustodyError("recording id must be a number"), "error.media_id_number")
        q = q.where(CustodyEvent.media_id == int(media_id))
    if subject.strip():
        q = q.where(CustodyEvent.subject.contains(subject.strip(), autoescape=True))
    if remote_addr.strip():
        q = q.where(CustodyEvent.remote_addr == remote_addr.strip())
    if (d := parse_day(since.strip())) is not None:
        q = q.where(CustodyEvent.at >= day_bounds(d, app.settings.tz)[0])
    if (d := parse_day(until.strip())) is not None:
        q = q.where(CustodyEvent.at < day_bounds(d, app.settings.tz)[1])
    if before is not None:
        if not 0 < before <= MAX_SEQ:
            raise CustodyError(f"before must be a custody log sequence number (1..{MAX_SEQ})")
        q = q.where(CustodyEvent.seq < before)
    filters = {k: v for k, v in {"actor": actor, "action": action, "outcome": outcome, "media_id": media_id,
                                 "subject": subject, "remote_addr": remote_addr, "since": since,
                                 "until": until}.items() if v.strip()}
    with app.catalog.session() as s:
        events = list(s.execute(q.order_by(CustodyEvent.seq.desc()).limit(PAGE)).scalars())
        # Reading the log is itself logged (after the query, so it does not list itself).
        trail.record(s, viewer, "viewed", subject="custody-log", detail={"filters": filters})
    older = events[-1].seq if len(events) == PAGE else None
    return render(request, "audit.html", viewer, events=events, filters=filters, older=older)
