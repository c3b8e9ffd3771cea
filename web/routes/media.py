"""A recording: its page, the player stream, the original download, keyframes, link/unlink."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from catalog.app import App
from core.errors import CustodyError, NotFound
from catalog.models import Derivative, Media, MediaLink
from web import actions, trail
from catalog.access import can_see_case, can_see_media
from web.auth import Refused, Viewer, allow
from web.guard import valid_id
from web.i18n import tagged
from web.pages import render
from web.queries import media_view
from web.streaming import (
    ObjectMissing,
    StoreFailed,
    RangeNotSatisfiable,
    content_type,
    not_satisfiable,
    open_range,
    parse_range,
    ranged_response,
)

router = APIRouter()


def _no_recording(media_id: int) -> NotFound:
    return tagged(NotFound(f"no recording {media_id}"), "error.no_recording", media_id=media_id)


def load_media(request: Request, s: Session, viewer: Viewer, media_id: int) -> Media:
    media = s.get(Media, media_id) if valid_id(media_id) else None
    if media is None:
        raise _no_recording(media_id)
    if not can_see_media(s, viewer.actor, media):
        # Outside the account's scope answers as a missing id would (no probing); logged as refused.
        raise Refused(viewer, f"recording {media_id} is outside what this account covers",
                      "recording outside the account's scope", as_missing=_no_recording(media_id),
                      media_id=media_id)
    return media


def _playable(media: Media) -> Media:
    if media.status == "purged":
        raise tagged(NotFound(f"recording {media.id} was purged on {media.purged_at}; only its record remains"),
                     "error.purged", media_id=media.id, at=media.purged_at)
    return media


@router.get("/media/{media_id}")
def media_page(request: Request, media_id: int, t: float | None = None,
               viewer: Viewer = Depends(allow("view"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        media = load_media(request, s, viewer, media_id)
        view = media_view(s, media)
        trail.record(s, viewer, "viewed", media_id=media.id, subject=f"media:{media.id}", detail={"page": "media"})
        return render(request, "media.html", viewer, view=view, start_at=max(t or 0.0, 0.0),
                      can_stream=viewer.can("stream"), can_link=viewer.can("link"), can_export=viewer.can("export"))


def _send(request: Request, viewer: Viewer, media_id: int, action: str, download: bool) -> Response:
    """Answer one (range) request and log it; the bytes stream after the log commits."""
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        media = _playable(load_media(request, s, viewer, media_id))
        try:
            rng = parse_range(request.headers.get("range"), media.size)
        except RangeNotSatisfiable:
            trail.record(s, viewer, action, outcome="refused", media_id=media.id, subject=f"media:{media.id}",
                         detail={"range": request.headers.get("range"), "reason": "range not satisfiable"})
            return not_satisfiable(media.size)
        span = {"start": rng.start, "end": rng.end} if rng else {"start": 0, "end": media.size - 1}
        key, size, kind, name = media.storage_key, media.size, media.kind, media.original_name
        try:  # open the object first: a missing one is logged as failed, never "ok"
            chunks = open_range(app.store, key, size, rng)
        except (ObjectMissing, StoreFailed) as e:
            trail.record(s, viewer, action, outcome="failed", media_id=media.id, subject=f"media:{media.id}",
                         detail={**span, "size": size, "reason": str(e)})
            failed = e
        else:
            failed = None
            trail.record(s, viewer, action, media_id=media.id, subject=f"media:{media.id}",
                         detail={**span, "size": size})
    if failed is not None:
        raise failed
    return ranged_response(app.store, key, size, rng, content_type(kind, name),
                           download_name=name if download else None, chunks=chunks)


@router.get("/media/{media_id}/stream")
def stream(request: Request, media_id: int, viewer: Viewer = Depends(allow("stream"))) -> Response:
    return _send(request, viewer, media_id, "streamed", download=False)


@router.get("/media/{media_id}/download")
def download(request: Request, media_id: int, viewer: Viewer = Depends(allow("export"))) -> Response:
    """The original, byte for byte (copying evidence is approved by role and logged)."""
    return _send(request, viewer, media_id, "downloaded", download=True)


@router.get("/derivatives/{derivative_id}")
def derivative(request: Request, derivative_id: int, viewer: Viewer = Depends(allow("view"))) -> Response:
    """A keyframe or thumbnail image, streamed from the store."""
    app: App = request.app.state.custody
    missing = tagged(NotFound(f"no keyframe {derivative_id}"), "error.no_keyframe", id=derivative_id)
    with app.catalog.session() as s:
        d = s.get(Derivative, derivative_id) if valid_id(derivative_id) else None
        if d is None or d.purged_at is not None:
            raise missing
        try:
            load_media(request, s, viewer, d.media_id)
        except Refused as e:  # a keyframe of a recording out of scope is as missing as the recording
            e.as_missing = missing
            raise
        key = d.storage_key
        try:
            data = b"".join(open_range(app.store, key, None, None))  # keyframes are small JPEGs
        except (ObjectMissing, StoreFailed) as e:
            trail.record(s, viewer, "viewed", outcome="failed", media_id=d.media_id, subject=f"derivative:{d.id}",
                         detail={"kind": d.kind, "reason": str(e)})
            failed = e
        else:
            failed = None
            trail.record(s, viewer, "viewed", media_id=d.media_id, subject=f"derivative:{d.id}",
                         detail={"kind": d.kind, "offset_seconds": d.offset_seconds})
    if failed is not None:
        raise failed
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.post("/media/{media_id}/link")
def link(request: Request, media_id: int, case_no: str = Form(""), reason: str = Form(""),
         viewer: Viewer = Depends(allow("link"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        media = load_media(request, s, viewer, media_id)
        case = actions.find_case(s, case_no)
        if not can_see_case(s, viewer.actor, case):
            raise Refused(viewer, f"case {case.case_no} belongs to a unit this account does not cover",
                          "case outside the account's units", case_no=case.case_no,
                          as_missing=NotFound(f"no case {case_no.strip()!r} (import it with `custody import "
                                              "cases FILE`)"))
        actions.link(s, viewer, media, case, reason)
    return RedirectResponse(f"/media/{media_id}", status_code=303)


@router.post("/links/{link_id}/unlink")
def unlink(request: Request, link_id: int, reason: str = Form(""),
           viewer: Viewer = Depends(allow("link"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        row = s.get(MediaLink, link_id) if valid_id(link_id) else None
        missing = tagged(NotFound(f"no link {link_id}"), "error.no_link", id=link_id)
        if row is None:
            raise missing
        try:
            load_media(request, s, viewer, row.media_id)
        except Refused as e:
            e.as_missing = missing
            raise
        if not row.active:
            raise tagged(CustodyError(f"link {link_id} was already removed"), "error.link_removed", id=link_id)
        actions.unlink(s, viewer, row, reason)
        media_id = row.media_id
    return RedirectResponse(f"/media/{media_id}", status_code=303)
