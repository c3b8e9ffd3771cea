"""The review queue: recordings the linker could not place with confidence."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from catalog.app import App
from core.errors import NotFound
from catalog.models import Media, ReviewItem
from web import actions, trail
from catalog.access import can_see_case, scope_media
from web.auth import Refused, Viewer, allow
from web.guard import valid_id
from web.i18n import tagged
from web.pages import render
from web.routes.media import load_media

router = APIRouter()


@router.get("/review")
def queue(request: Request, viewer: Viewer = Depends(allow("review"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        q = (select(ReviewItem, Media).join(Media, Media.id == ReviewItem.media_id)
             .where(ReviewItem.state == "open").order_by(ReviewItem.created_at).limit(500))
        rows = s.execute(scope_media(q, viewer.actor)).all()
        trail.record(s, viewer, "viewed", subject="page:/review", detail={"open_items": len(rows)})
        return render(request, "review.html", viewer, rows=rows)


@router.post("/review/{item_id}/resolve")
def resolve(request: Request, item_id: int, case_no: str = Form(""), reason: str = Form(""),
            viewer: Viewer = Depends(allow("review"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        item = s.get(ReviewItem, item_id) if valid_id(item_id) else None
        missing = tagged(NotFound(f"no review item {item_id}"), "error.no_review_item", id=item_id)
        if item is None:
            raise missing
        try:
            load_media(request, s, viewer, item.media_id)
        except Refused as e:
            e.as_missing = missing
            raise
        if case_no.strip():
            case = actions.find_case(s, case_no)
            if not can_see_case(s, viewer.actor, case):
                raise Refused(viewer, f"case {case.case_no} belongs to a unit this account does not cover",
                              "case outside the account's units", case_no=case.case_no,
                              as_missing=NotFound(f"no case {case_no.strip()!r} (import it with `custody import "
                                                  "cases FILE`)"))
        actions.resolve_review(s, viewer, item, case_no, reason)
    return RedirectResponse("/review", status_code=303)
