"""Sharing: the sharer's pages (/shares...) and the recipient's page (/s/{token}, no account).

The recipient's requests carry no login: the link's random token names the share, and a cookie
scoped to the link's path proves the access code was given.  Every view, download and refusal
is a custody event with the address and the user agent (docs/sharing.md).
"""
from __future__ import annotations

import hmac
import shutil
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, RedirectResponse, Response

from catalog.app import App
from core.errors import CustodyError
from catalog.models import Share
from disclose import share as shares
from web.auth import Viewer, allow, remote_addr
from web.guard import RateLimiter
from web.i18n import enum_label, lang_of
from web.pages import render, templates
from web.receipt import render_receipt, station_time
from web.share_package import build_package
from web.share_text import translator

router = APIRouter()
# The share form and the sync player are included by the case and media pages: their words and the
# recipient kinds are template globals.
templates.env.globals.update(share_text=translator, share_kinds=shares.KINDS)

UNLOCK_COOKIE = "custody_share_unlock"
UNLOCK_SECONDS = 3600
# Per address and minute: code attempts (on top of the per-share lock) and logged unknown links
# (a flood of made-up tokens is answered, not written row by row into the custody log).
# One pair per web app (kept on its state), so two apps in one process do not share counts.
CODE_ATTEMPTS_PER_MINUTE = 10
UNKNOWN_LOGGED_PER_MINUTE = 10


def _limiter(request: Request, name: str, per_minute: int) -> RateLimiter:
    state = request.app.state
    limiter = getattr(state, name, None)
    if limiter is None:
        limiter = RateLimiter(per_minute=per_minute)
        setattr(state, name, limiter)
    return limiter


def _st(request: Request):  # noqa: ANN202 - the translator
    return translator(lang_of(request))


# --------------------------------------------------------------------------- the sharer
def _parse_targets(text: str) -> list[str]:
    return [p for p in text.replace(",", " ").replace("，", " ").split() if p]


@router.get("/shares")
def share_list(request: Request, viewer: Viewer = Depends(allow("share", "audit"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        rows = [shares.summary(s, sh) for sh in shares.list_shares(s, viewer.actor)]
    return render(request, "shares.html", viewer, st=_st(request), rows=rows)


@router.post("/shares")
def share_create(request: Request, targets: str = Form(""), recipient: str = Form(""), kind: str = Form(""),
                 content: str = Form("redacted"), expires: str = Form("7d"), code: str = Form(""),
                 downloads: str = Form(""), note: str = Form(""),
                 viewer: Viewer = Depends(allow("share"))) -> Response:
    app: App = request.app.state.custody
    limit = None
    if downloads.strip():
        if not downloads.strip().isdigit():
            raise CustodyError("the download limit must be a whole number / 下载次数须为整数")
        limit = int(downloads.strip())
    span = shares.parse_expiry(expires)
    with app.catalog.session() as s:
        made = shares.create_share(s, viewer.actor, _parse_targets(targets), recipient=recipient, kind=kind,
                                   content=content, expires=span, code=bool(code), max_downloads=limit, note=note,
                                   remote_addr=viewer.remote_addr, via="web")
        r = shares.summary(s, made.share)
    link = str(request.base_url).rstrip("/") + made.path
    return render(request, "share_created.html", viewer, st=_st(request), share_id=r["id"], r=r, link=link,
                  code=made.code, skipped=made.skipped)


@router.get("/shares/{share_id}")
def share_detail(request: Request, share_id: int, viewer: Viewer = Depends(allow("share", "audit"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        sh = shares.get_share(s, viewer.actor, share_id)
        r = shares.summary(s, sh)
        can_manage = shares.may_manage(viewer.actor, sh) and viewer.can("share")
    return render(request, "share_detail.html", viewer, st=_st(request), r=r, can_manage=can_manage)


@router.post("/shares/{share_id}/revoke")
def share_revoke(request: Request, share_id: int, reason: str = Form(""),
                 viewer: Viewer = Depends(allow("share"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        shares.revoke(s, viewer.actor, share_id, reason, remote_addr=viewer.remote_addr, via="web")
    return RedirectResponse(f"/shares/{share_id}", status_code=303)


@router.get("/shares/{share_id}/receipt")
def share_receipt(request: Request, share_id: int, viewer: Viewer = Depends(allow("share", "audit"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        r = shares.summary(s, shares.get_share(s, viewer.actor, share_id))
    return Response(render_receipt(app, r, lang_of(request)), media_type="text/html; charset=utf-8")


# --------------------------------------------------------------------------- the recipient
def _ua(request: Request) -> str:
    return request.headers.get("user-agent", "")


def _page(request: Request, name: str, token: str, status_code: int = 200, **ctx: object) -> Response:
    app: App = request.app.state.custody
    lang = lang_of(request)
    base_path = f"/s/{token}"
    lang_href = f"/lang?to={'en' if lang == 'zh-CN' else 'zh-CN'}&next={quote(base_path)}"
    resp = render(request, name, None, status_code=status_code, st=translator(lang), org=app.settings.station.name,
                  base_path=base_path, lang_href=lang_href,
                  val_kind=lambda k: enum_label(lang, "media_kind", k), **ctx)
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak to another site
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


def _closed(request: Request, token: str, reason: str, share_expires=None) -> Response:  # noqa: ANN001
    app: App = request.app.state.custody
    st = translator(lang_of(request))
    message = st(f"recv.{reason}", at=station_time(app, share_expires)) if reason == "expired" else st(f"recv.{reason}")
    return _page(request, "share_closed.html", token, status_code=404 if reason == "unknown" else 410,
                 reason=reason, message=message)


def _unlocked(request: Request, token: str, share) -> bool:  # noqa: ANN001
    if share.code_hash is None:
        return True
    sent = request.cookies.get(UNLOCK_COOKIE, "")
    return bool(sent) and hmac.compare_digest(sent, shares.unlock_proof(token, share))


def _open(request: Request, token: str, wanted: str):  # noqa: ANN202
    """(share_id, None) when the link is usable for `wanted`, else (None, the answer); refusals logged."""
    app: App = request.app.state.custody
    addr, ua = remote_addr(request), _ua(request)
    with app.catalog.session() as s:
        sh = shares.find_by_token(s, token)
        if sh is None:
            if _limiter(request, "share_unknown_logged", UNKNOWN_LOGGED_PER_MINUTE).hit(addr):
                shares.recipient_event(s, None, "share_refused", outcome="refused", remote_addr=addr, user_agent=ua,
                                       detail={"reason": "unknown", "wanted": wanted, "token_sha256_12":
                                               shares.token_hash(token)[:12]})
            return None, _closed(request, token, "unknown")
        state = shares.state_of(sh)
        # A used-up share can still be viewed (and its receipt read); only downloads stop.
        if state in ("revoked", "expired") or (state == "used_up" and wanted == "download"):
            shares.recipient_event(s, sh, "share_refused", outcome="refused", remote_addr=addr, user_agent=ua,
                                   detail={"reason": state, "wanted": wanted})
            return None, _closed(request, token, state, sh.expires_at)
        if not _unlocked(request, token, sh):
            if wanted != "view":
                shares.recipient_event(s, sh, "share_refused", outcome="refused", remote_addr=addr, user_agent=ua,
                                       detail={"reason": "code_required", "wanted": wanted})
            return None, _page(request, "share_code.html", token, status_code=401 if wanted != "view" else 200,
                               error=None)
        return sh.id, None


@router.get("/s/{token}")
def recipient_page(request: Request, token: str) -> Response:
    app: App = request.app.state.custody
    share_id, answer = _open(request, token, "view")
    if answer is not None:
        return answer
    with app.catalog.session() as s:
        sh = s.get(Share, share_id)
        shares.recipient_event(s, sh, "share_viewed", remote_addr=remote_addr(request), user_agent=_ua(request))
        r = shares.summary(s, sh)
    return _page(request, "share_recipient.html", token, r=r)


@router.post("/s/{token}")
def recipient_code(request: Request, token: str, code: str = Form("")) -> Response:
    app: App = request.app.state.custody
    addr, ua = remote_addr(request), _ua(request)
    st = translator(lang_of(request))
    with app.catalog.session() as s:
        sh = shares.find_by_token(s, token)
        if sh is None or shares.state_of(sh) in ("revoked", "expired"):
            pass  # answered (and logged) below by _open
        elif sh.code_hash is None:
            return RedirectResponse(f"/s/{token}", status_code=303)
        elif not _limiter(request, "share_code_attempts", CODE_ATTEMPTS_PER_MINUTE).hit(addr):
            shares.recipient_event(s, sh, "share_refused", outcome="refused", remote_addr=addr, user_agent=ua,
                                   detail={"reason": "rate_limited"})
            return _page(request, "share_code.html", token, status_code=429, error="locked",
                         error_text=st("recv.locked", minutes=1))
        else:
            result = shares.check_code(s, sh, code, remote_addr=addr, user_agent=ua)
            if result == "ok":
                resp = RedirectResponse(f"/s/{token}", status_code=303)
                resp.set_cookie(UNLOCK_COOKIE, shares.unlock_proof(token, sh), max_age=UNLOCK_SECONDS,
                                path=f"/s/{token}", httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
                return resp
            text = (st("recv.locked", minutes=int(shares.CODE_LOCK_MINUTES)) if result == "locked"
                    else st("recv.wrong"))
            return _page(request, "share_code.html", token, status_code=429 if result == "locked" else 401,
                         error=result, error_text=text)
    _, answer = _open(request, token, "code")
    assert answer is not None
    return answer


@router.get("/s/{token}/package")
def recipient_package(request: Request, token: str) -> Response:
    """Build the bag, count the download (refused when the limit was reached meanwhile), send it."""
    app: App = request.app.state.custody
    share_id, answer = _open(request, token, "download")
    if answer is not None:
        return answer
    try:
        package = build_package(app, share_id)
    except Exception as e:  # the store failed or returned other bytes: nothing sent, nothing counted
        with app.catalog.session() as s:
            shares.recipient_event(s, s.get(Share, share_id), "share_downloaded", outcome="failed",
                                   remote_addr=remote_addr(request), user_agent=_ua(request),
                                   detail={"error": str(e)[:500] or type(e).__name__})
        raise
    try:
        with app.catalog.session() as s:
            sh = s.get(Share, share_id)
            state = shares.claim_download(s, sh, remote_addr=remote_addr(request), user_agent=_ua(request),
                                          package=package.describe())
            expires = sh.expires_at
    except BaseException:
        shutil.rmtree(package.work, ignore_errors=True)
        raise
    if state != "open":
        shutil.rmtree(package.work, ignore_errors=True)
        return _closed(request, token, state, expires)
    return FileResponse(package.zip_path, media_type="application/zip", filename=package.zip_path.name,
                        background=BackgroundTask(shutil.rmtree, package.work, True))


@router.get("/s/{token}/receipt")
def recipient_receipt(request: Request, token: str) -> Response:
    app: App = request.app.state.custody
    share_id, answer = _open(request, token, "receipt")
    if answer is not None:
        return answer
    with app.catalog.session() as s:
        sh = s.get(Share, share_id)
        shares.recipient_event(s, sh, "share_viewed", remote_addr=remote_addr(request), user_agent=_ua(request),
                               detail={"page": "receipt"})
        r = shares.summary(s, sh)
    resp = Response(render_receipt(app, r, lang_of(request)), media_type="text/html; charset=utf-8")
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
