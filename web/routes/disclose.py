"""Redaction from the web app: the form (/media/{id}/redact), the derived copy's page with its
redaction log (/redactions/{derived_id}) and the second reviewer's approval.

The same code as `custody redact` / `custody redaction approve` (disclose.derived) does the work;
making a copy needs the `export` capability, approving needs `review` and another account than
the author's.  Every step is a custody event with the viewer's address.
"""
from __future__ import annotations

import json
import logging
import re
import time

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from catalog.app import App
from catalog.models import Media
from core.errors import CustodyError, NotFound
from disclose import derived, queue, redact
from web import trail
from web.auth import Viewer, allow
from web.i18n import lang_of
from web.pages import render, templates
from web.redact_text import translator
from web.routes.media import load_media

router = APIRouter()
log = logging.getLogger(__name__)
WAIT_SECONDS = 20  # the form's answer waits this long for a short redaction before showing progress
# The media page includes the redaction panel: its words are a template global.
templates.env.globals.update(redact_text=translator)


def _rt(request: Request):  # noqa: ANN202 - the translator
    return translator(lang_of(request))


def _plan(start: str, end: str, faces: bool, boxes: str, mute: str, still: str) -> redact.Plan:
    parsed_boxes: list[redact.ManualBox] = []
    if boxes.strip():
        try:
            data = json.loads(boxes)
        except ValueError as e:
            raise CustodyError(f"the boxes are not valid JSON: {e} / 遮挡框不是有效的 JSON") from e
        if isinstance(data, dict):
            data = data.get("boxes", [])
        if not isinstance(data, list):
            raise CustodyError("the boxes must be a JSON list / 遮挡框须为列表")
        parsed_boxes = [redact.ManualBox.from_json(d) for d in data]
    ranges = [p for p in re.split(r"[,\s，]+", mute.strip()) if p]
    return redact.Plan(start=redact.parse_time(start) if start.strip() else 0.0,
                       end=redact.parse_time(end) if end.strip() else None, faces=faces, boxes=parsed_boxes,
                       mute=[redact.parse_range(r) for r in ranges],
                       still=redact.parse_time(still) if still.strip() else None)


@router.get("/media/{media_id}/redact")
def redact_form(request: Request, media_id: int, start: str = Query("", alias="from", max_length=32),
                end: str = Query("", alias="to", max_length=32),
                viewer: Viewer = Depends(allow("export"))) -> Response:
    """The form; `?from=T&to=T` fills the segment (a player's in/out marks can link here)."""
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        media = load_media(request, s, viewer, media_id)
        if media.status != "stored":
            raise NotFound(f"recording {media_id} was purged / 录像已清除")
        trail.record(s, viewer, "viewed", media_id=media.id, subject=f"media:{media.id}",
                     detail={"page": "redact"})
        return render(request, "redact_form.html", viewer, rt=_rt(request), m=media, pre_from=start, pre_to=end)


@router.post("/media/{media_id}/redact")
def redact_submit(request: Request, media_id: int, start: str = Form(""), end: str = Form(""),
                  faces: str = Form(""), boxes: str = Form(""), mute: str = Form(""), still: str = Form(""),
                  reason: str = Form(""), viewer: Viewer = Depends(allow("export"))) -> Response:
    """Checks the form at once (400 on a mistake), then queues the redaction as a catalog job
    (disclose/queue.py: one at a time, finished after a restart): a recording takes about as
    long as it plays, longer than a browser waits for an answer."""
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        media = load_media(request, s, viewer, media_id)  # scope checked (and refusals logged) as for viewing
        if media.status != "stored":
            raise NotFound(f"recording {media_id} was purged / 录像已清除")
    plan = _plan(start, end, bool(faces), boxes, mute, still)
    reason = derived.check_reason(reason)
    job_id = queue.request(app, media_id, plan, reason, viewer.username, viewer.remote_addr)
    deadline = time.monotonic() + WAIT_SECONDS  # short recordings: straight to the result
    while time.monotonic() < deadline:
        st = queue.status(app, job_id)
        if st is None or st.state in ("done", "failed"):
            break
        time.sleep(0.2)
    return RedirectResponse(f"/redact-runs/{job_id}", status_code=303)


@router.get("/redact-runs/{job_id}")
def redact_progress(request: Request, job_id: int, viewer: Viewer = Depends(allow("export"))) -> Response:
    app: App = request.app.state.custody
    st = queue.status(app, job_id)
    if st is None or st.username != viewer.username:
        raise NotFound("no such redaction in progress / 无此处理任务")
    if st.state in ("pending", "running"):
        page = render(request, "redact_running.html", viewer, rt=_rt(request), media_id=st.media_id)
        page.headers["Refresh"] = "3"  # the browser asks again (no script needed)
        return page
    if st.state == "failed" or st.derived_id is None:
        raise CustodyError(st.error or "the redaction failed / 处理失败")
    return RedirectResponse(f"/redactions/{st.derived_id}", status_code=303)


@router.get("/redactions/{derived_id}")
def redaction_page(request: Request, derived_id: int, viewer: Viewer = Depends(allow("view"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        media = load_media(request, s, viewer, derived_id)
        red = derived.redaction_of(s, media.id)
        if red is None:
            raise NotFound(f"recording {derived_id} is not a derived copy / 该录像不是处理副本")
        original = s.get(Media, red.original_media_id)
        trail.record(s, viewer, "viewed", media_id=media.id, subject=f"redaction:{red.id}",
                     detail={"page": "redaction"})
        data = derived.redaction_json(red)
        return render(request, "redaction.html", viewer, rt=_rt(request), m=media, original=original, r=data,
                      log_json=json.dumps(data["log"], ensure_ascii=False, indent=1, default=str),
                      can_approve=viewer.can("review") and viewer.username != red.created_by
                      and not data["approved"])


@router.post("/redactions/{derived_id}/approve")
def redaction_approve(request: Request, derived_id: int, note: str = Form(""),
                      viewer: Viewer = Depends(allow("review"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        load_media(request, s, viewer, derived_id)
    derived.approve(app, str(derived_id), actor=viewer.actor, note=note, remote_addr=viewer.remote_addr)
    return RedirectResponse(f"/redactions/{derived_id}", status_code=303)
