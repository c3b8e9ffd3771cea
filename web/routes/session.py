"""Log in, log out, language switch and the home page."""
from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from catalog.app import App
from web import auth
from web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Viewer, allow, guards_of, remote_addr
from web.guard import same_origin
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


def secure_cookies(request: Request) -> bool:
    """Cookies are Secure over HTTPS, and always in production mode."""
    return request.url.scheme == "https" or request.app.state.custody.settings.web.production


# Whatever went wrong (no such account, wrong password, locked, disabled) the browser is
# told the same thing; the custody log keeps the real reason.
_SHOWN_ERRORS = {"bad_form": "bad_form", "busy": "busy", "rate": "rate"}


@router.get("/login")
def login_page(request: Request, next: str = "/", error: str = "") -> Response:
    token = guards_of(request).login_csrf.issue()
    shown = _SHOWN_ERRORS.get(error, "failed" if error else "")
    resp = render(request, "login.html", None, login_csrf=token, next=safe_next(next), error=shown)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                    secure=secure_cookies(request), path="/login")
    return resp


@router.post("/login")
async def login_submit(request: Request, username: str = Form(""), password: str = Form(""),
                       csrf: str = Form(""), next: str = Form("/")) -> Response:
    app: App = request.app.state.custody
    guards = guards_of(request)
    addr = remote_addr(request)
    name = username.strip()
    back = f"&next={quote(safe_next(next))}"
    if not guards.login_by_addr.hit(addr):
        await run_in_threadpool(auth.log_refusal, app, request, None, "login rate limit (address)")
        return RedirectResponse(f"/login?error=rate{back}", status_code=303)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    host = request.headers.get("host")
    if app.settings.web.behind_tls_proxy and request.headers.get("x-forwarded-host"):
        host = request.headers["x-forwarded-host"]  # the public name (a cross-site form cannot set it)
    if not guards.login_csrf.valid(cookie, csrf) or not same_origin(
            request.headers.get("origin"), request.headers.get("sec-fetch-site"), host):
        await run_in_threadpool(auth.log_refusal, app, request, None, "login form without a valid CSRF token",
                                username=username[:64])
        return RedirectResponse(f"/login?error=bad_form{back}", status_code=303)
    if not guards.login_by_account.hit(name[:64]) and \
            not await run_in_threadpool(auth.known_source, app, name, addr):
        # Others flooding a name do not keep its holder out: their own machines still get through.
        await run_in_threadpool(auth.log_refusal, app, request, None, "login rate limit (account)",
                                username=name[:64])
        return RedirectResponse(f"/login?error=rate{back}", status_code=303)
    result = await run_in_threadpool(auth.attempt_login, app, name, password, addr, guards.passwords)
    if result.delay:
        await asyncio.sleep(result.delay)
    if not result.ok:
        shown = "busy" if result.reason == "busy" else "failed"
        return RedirectResponse(f"/login?error={shown}{back}", status_code=303)
    target = safe_next(next) if next not in ("", "/") else "/"
    if result.mfa:
        target = f"/login/mfa?next={quote(target)}"
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="strict",
                    secure=secure_cookies(request), max_age=int(app.settings.web.session_hours * 3600))
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
