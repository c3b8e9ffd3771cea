"""Web hardening installed on the app (issue 17): flood limits, logged 400/404s, scope
refusals that look like missing ids, HSTS, trusted proxy headers, production mode.

`install(api, error)` is called by `web.app.create_app` after its own error pages; the
handlers registered here replace the stock ones for the same exceptions.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from catalog import custody_log
from catalog.app import App
from core.errors import ConfigError, CustodyError, NotFound, PermissionDenied
from web.auth import SESSION_COOKIE, Guards, LoginRequired, MfaRequired, Refused, log_refusal, remote_addr
from web.middleware import HttpMiddleware
from web.routes import access, mfa

log = logging.getLogger("custody.web")

_MACHINE_PATHS = ("/api/", "/files")  # bearer-token APIs keep their own JSON errors and limits


def check_transport(app: App, *, tls: bool) -> None:
    """Production mode refuses plain HTTP unless a TLS-terminating proxy is declared."""
    cfg = app.settings.web
    if cfg.production and not tls and not cfg.behind_tls_proxy:
        raise ConfigError("[web].production is set: serve HTTPS (--certfile/--keyfile or [web].certfile/keyfile) "
                          "or set [web].behind_tls_proxy = true behind a TLS-terminating proxy "
                          "/ 生产模式须使用 HTTPS 或声明 TLS 反向代理")


def _log_bad(request: Request, status: int, why: str) -> None:
    """A 400/404 answered to a request: logged as `refused` (anonymous ones aggregated)."""
    app: App = request.app.state.custody
    viewer = getattr(request.state, "viewer", None)
    try:
        if viewer is None:
            log_refusal(app, request, None, why, status=status)
        else:
            with app.catalog.session() as s:
                custody_log.record(s, "refused", actor=viewer.username, outcome="refused",
                                   remote_addr=viewer.remote_addr,
                                   subject=f"{request.method} {request.url.path}"[:200],
                                   detail={"reason": why[:500], "status": status, "via": "web"})
    except Exception:  # the answer still goes out; the failure to log is in the server log
        log.exception("could not log a refused request")


def install(api: FastAPI, error: Callable[[Request, int, str, Any], Response]) -> None:
    app: App = api.state.custody
    cfg = app.settings.web
    guards = api.state.guards = Guards(app)
    for module in (mfa, access):
        api.include_router(module.router)

    @api.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        # A made-up session cookie must not bypass the anonymous limit (cookie-less requests
        # were counted by the middleware already).
        if request.cookies.get(SESSION_COOKIE) and not guards.anonymous.hit(remote_addr(request)):
            return Response("429: too many requests / 请求过于频繁\n", status_code=429,
                            media_type="text/plain; charset=utf-8", headers={"Retry-After": "60"})
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            page = "/login/mfa" if isinstance(exc, MfaRequired) else "/login"
            return RedirectResponse(f"{page}?next={quote(target)}", status_code=303)
        return Response(f"401: {exc}\n", status_code=401, media_type="text/plain; charset=utf-8")

    @api.exception_handler(PermissionDenied)
    async def forbidden(request: Request, exc: PermissionDenied) -> Response:
        if isinstance(exc, Refused):  # raised inside a transaction: log now that it has ended
            await run_in_threadpool(log_refusal, app, request, exc.viewer, exc.why, **exc.detail)
            if exc.as_missing is not None:
                return error(request, 404, "error.not_found", exc.as_missing)
        return error(request, 403, "error.forbidden", exc)

    @api.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        await run_in_threadpool(_log_bad, request, 404, str(exc))
        return error(request, 404, "error.not_found", exc)

    @api.exception_handler(CustodyError)
    async def bad_request(request: Request, exc: CustodyError) -> Response:
        await run_in_threadpool(_log_bad, request, 400, str(exc))
        return error(request, 400, "error.bad_request", exc)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(_MACHINE_PATHS):
            return await request_validation_exception_handler(request, exc)
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) or "?" for e in exc.errors()})
        await run_in_threadpool(_log_bad, request, 400, f"invalid input: {', '.join(fields)}")
        return error(request, 400, "error.bad_request", f"invalid input: {', '.join(fields)}")

    previous_http = api.exception_handlers.get(StarletteHTTPException)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (400, 404, 405):
            await run_in_threadpool(_log_bad, request, exc.status_code, str(exc.detail))
        return await previous_http(request, exc)

    @api.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        """Anything unforeseen: a plain 500 without internals, and a `failed` event."""
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        viewer = getattr(request.state, "viewer", None)

        def write() -> None:
            with app.catalog.session() as s:
                custody_log.record(s, "refused", actor=viewer.username if viewer else "anonymous", outcome="failed",
                                   remote_addr=remote_addr(request),
                                   subject=f"{request.method} {request.url.path}"[:200],
                                   detail={"reason": f"server error ({type(exc).__name__})", "status": 500})
        try:
            await run_in_threadpool(write)
        except Exception:
            log.exception("could not log the server error")
        return error(request, 500, "error.server", "internal error; see the server log")

    async def limits(request: Request) -> Response | None:
        """Before the route: the anonymous flood limit, HTTPS in production (None: go on)."""
        path = request.url.path
        anonymous = (not request.cookies.get(SESSION_COOKIE) and "authorization" not in request.headers
                     and not path.startswith(_MACHINE_PATHS))
        if anonymous and not guards.anonymous.hit(remote_addr(request)):
            await run_in_threadpool(log_refusal, app, request, None, "anonymous rate limit")
            return Response("429: too many requests / 请求过于频繁\n", status_code=429,
                            media_type="text/plain; charset=utf-8", headers={"Retry-After": "60"})
        if cfg.production and request.url.scheme != "https":
            await run_in_threadpool(log_refusal, app, request, None, "plain HTTP in production mode")
            return Response("400: HTTPS required / 须使用 HTTPS\n", status_code=400,
                            media_type="text/plain; charset=utf-8")
        if guards.refusals.has_due():  # a finished minute's count is written without waiting for more
            await run_in_threadpool(guards.refusals.flush, False)
        return None

    def hsts(request: Request) -> dict[str, str]:
        if request.url.scheme == "https" and cfg.hsts_seconds > 0:
            return {"Strict-Transport-Security": f"max-age={cfg.hsts_seconds}"}
        return {}

    api.add_middleware(HttpMiddleware, before=limits, headers=hsts)

    if cfg.behind_tls_proxy:  # X-Forwarded-For/-Proto count only from the trusted proxies
        api.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(cfg.trusted_proxies))

    inner = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):  # noqa: ANN001, ANN202
        async with inner(a) as state:
            yield state
        guards.refusals.flush()  # the counts of the last minute's anonymous refusals

    api.router.lifespan_context = lifespan
