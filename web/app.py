"""`create_app(app)`: the FastAPI application over one catalog and one store."""
from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager, contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from catalog.app import App
from disclose import queue as redact_queue
from ingest import field
from core.errors import CustodyError, NotFound, PermissionDenied, StorageIntegrityError, StorageUnavailable
from catalog import custody_log
from web.auth import LoginRequired, Refused, log_refusal, remote_addr
from web.hardening import install as install_hardening
from web.i18n import error_text, lang_of
from web.middleware import HttpMiddleware
from web.pages import render
from web.routes import admin, api_v1, audit, cases, media, mine, review, session, uploads
from web.routes import disclose as disclose_routes
from web.routes import share as share_routes

log = logging.getLogger("custody.web")
STATIC_DIR = Path(__file__).resolve().parent / "static"


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; media-src 'self'; "
                                "style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    "Cache-Control": "no-store",
}


def _resume_field_uploads(app: App) -> None:
    try:
        field.sweep(app, force=True)
    except Exception:  # noqa: BLE001 - the next request's or the daemon's sweep tries again
        log.exception("field uploads left unstored by a stopped server: not resumed at start")


@contextmanager
def _request_origin(request: Request) -> Iterator[None]:
    token = custody_log.request_origin.set(remote_addr(request))
    try:
        yield
    finally:
        custody_log.request_origin.reset(token)


def create_app(app: App) -> FastAPI:
    api = FastAPI(title="Custody", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.custody = app
    api.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for module in (session, cases, media, review, admin, audit, mine, uploads, api_v1, share_routes, disclose_routes):
        api.include_router(module.router)
    _install_error_pages(api)
    install_hardening(api, _error)  # issue 17: limits, logged 400/404s, scope as 404, HSTS, proxies

    inner = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):  # noqa: ANN001, ANN202
        # Field uploads a stopped server left complete but unstored (killed between the last
        # PATCH and the store) are stored now, not at the next request (issue 15). In a thread:
        # the server answers meanwhile.
        threading.Thread(target=_resume_field_uploads, args=(app,), name="field-resume", daemon=True).start()
        # Redactions asked for in the web app run here, one at a time, as catalog jobs: those a
        # stopped server left are finished now (disclose/queue.py).
        redactions = redact_queue.Worker(app)
        redactions.start()
        try:
            async with inner(a) as state:
                yield state
        finally:
            redactions.stop()

    api.router.lifespan_context = lifespan

    # Events recorded anywhere while a request is served (linking, holds, plans) carry its origin;
    # pages are evidence views: never framed, never cached by shared caches, no sniffing.
    api.add_middleware(HttpMiddleware, headers=lambda request: SECURITY_HEADERS, around=_request_origin)

    return api


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith("/api/"):  # machines (terminals, the enforcement system): plain text, never a page
        return False
    return "text/html" in request.headers.get("accept", "") or request.method == "POST"


def _error(request: Request, status: int, title_key: str, message: str | BaseException) -> Response:
    if _wants_html(request):
        text = error_text(lang_of(request), message) if isinstance(message, BaseException) else message
        return render(request, "error.html", None, status_code=status, title_key=title_key, message=text)
    return Response(f"{status}: {message}\n", status_code=status, media_type="text/plain; charset=utf-8")


def _install_error_pages(api: FastAPI) -> None:
    @api.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET" and _wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        return Response(f"401: {exc}\n", status_code=401, media_type="text/plain; charset=utf-8")

    @api.exception_handler(PermissionDenied)
    async def forbidden(request: Request, exc: PermissionDenied) -> Response:
        if isinstance(exc, Refused):  # raised inside a transaction: log now that it has ended
            await run_in_threadpool(log_refusal, request.app.state.custody, request, exc.viewer, exc.why,
                                    **exc.detail)
        return _error(request, 403, "error.forbidden", exc)

    @api.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _error(request, 404, "error.not_found", exc)

    @api.exception_handler(StorageUnavailable)
    async def store_down(request: Request, exc: StorageUnavailable) -> Response:
        return _error(request, 503, "error.store_down", exc)

    @api.exception_handler(StorageIntegrityError)
    async def store_broken(request: Request, exc: StorageIntegrityError) -> Response:
        return _error(request, 500, "error.store_broken", exc)

    @api.exception_handler(CustodyError)
    async def bad_request(request: Request, exc: CustodyError) -> Response:
        return _error(request, 400, "error.bad_request", exc)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        key = "error.not_found" if exc.status_code == 404 else "error.bad_request"
        # Starlette's stock English phrase ("Not Found") adds nothing to the translated title.
        detail = str(exc.detail)
        try:
            stock = detail == HTTPStatus(exc.status_code).phrase
        except ValueError:
            stock = False
        return _error(request, exc.status_code, key, "" if stock and _wants_html(request) else detail)
