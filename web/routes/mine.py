"""Inspectors: a list of their own recordings (no playback; reviewers do that)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from catalog.app import App
from catalog.models import Media
from web import trail
from catalog.access import scope_media
from web.auth import Viewer, allow
from web.pages import render

router = APIRouter()


@router.get("/mine")
def mine(request: Request, viewer: Viewer = Depends(allow("view_own"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        rows = list(s.execute(scope_media(select(Media), viewer.actor)
                              .order_by(Media.recorded_start.desc().nulls_last()).limit(500)).scalars())
        trail.record(s, viewer, "viewed", subject="page:/mine", detail={"recordings": len(rows)})
        return render(request, "mine.html", viewer, rows=rows)
