"""The auditor's access review page: privileged, unused and disabled accounts, recent changes."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from catalog.access_review import review
from catalog.app import App
from catalog.duty import enforce_duty, station_today
from catalog.models import utcnow
from web import trail
from web.auth import Viewer, allow
from web.pages import render

router = APIRouter()


@router.get("/audit/accounts")
def access_review(request: Request, days: int | None = None,
                  viewer: Viewer = Depends(allow("audit", "users"))) -> Response:
    app: App = request.app.state.custody
    unused_days = min(max(days if days is not None else app.settings.web.review_unused_days, 1), 36500)
    with app.catalog.session() as s:
        enforce_duty(s, station_today(app.settings.tz), by=f"station:{app.settings.station.name}",
                     remote_addr=viewer.remote_addr)
    with app.catalog.session() as s:
        result = review(s, utcnow(), unused_days=unused_days)
        trail.record(s, viewer, "viewed", subject="page:/audit/accounts", detail={"unused_days": unused_days})
    return render(request, "access_review.html", viewer, r=result)
