"""Log in, log out, language switch and the home page."""
from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from catalog.app import App
from web import auth
from web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Viewer, allow, remote_addr
from web.i18n import LANGS
from web.pages import render

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only same-site paths: a crafted ?next= must not send a reviewer elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def home_for(viewer: Viewer) -> str:
    if viewer.can("view"):
        return "/admin" if viewer.can("admin") else ("/audit" if viewer.can("audit") else "/search")
    return "/mine" if viewer.can("view_own") else "/login"


@router.get("/login")
def login_page(request: Request, next: str = "/", error: str = "") -> Response:
    token = secrets.token_hex(32)
    resp = render(request, "login.html", None, login_csrf=token, next=safe_next(next), error=error)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/login")
    return resp


@router.post("/login")
async def login_submit(request: Request, username: str = Form(""), password: str = Form(""),
                       csrf: str = Form(""), next: str = Form("/")) -> Response:
    app: App = request.app.state.custody
    addr = remote_addr(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf or not hmac.compare_digest(cookie, csrf):
        await run_in_threadpool(auth.log_refusal, app, request, None, "login form without matching CSRF token",
                                username=username[:64])
        return RedirectResponse(f"/login?error=bad_form&next={quote(safe_next(next))}", status_code=303)
    result = await run_in_threadpool(auth.attempt_login, app, username.strip(), password, addr)
    if not result.ok:
        return RedirectResponse(f"/login?error={result.reason}&next={quote(safe_next(next))}", status_code=303)
    resp = RedirectResponse(safe_next(next) if next not in ("", "/") else "/", status_code=303)
    resp.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", max_age=int(app.settings.web.session_hours * 3600))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
def logout(request: Request, viewer: Viewer = Depends(allow())) -> Response:
    auth.logout(request.app.state.custody, request.cookies.get(SESSION_COOKIE), viewer.remote_addr)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@router.get("/lang")
def switch_language(request: Request, to: str = "zh-CN", next: str = "/") -> Response:
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie("lang", to if to in LANGS else "zh-CN", samesite="lax", max_age=365 * 86400)
    return resp


@router.get("/")
def home(request: Request) -> Response:
    app: App = request.app.state.custody
    try:
        viewer = auth.load_viewer(app, request.cookies.get(SESSION_COOKIE), remote_addr(request))
    except auth.LoginRequired:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_for(viewer), status_code=303)
