"""Web login sessions, CSRF and the role check every route goes through.

A browser holds a random session token in an HttpOnly cookie; the catalog keeps
only its SHA-256 (a stolen database dump logs nobody in).  Each login session has
its own CSRF token, which every POST must echo (form field `csrf` or header
`X-CSRF-Token`).  The login form itself is protected by a double-submit cookie.
Every refusal is written to the custody log with who, what and from where.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from catalog.accounts import Actor, actor_of, check_password, hash_password
from catalog.app import App
from core.errors import CustodyError, PermissionDenied
from catalog import custody_log
from catalog.models import Account, LoginSession, utcnow
from web.i18n import tagged

SESSION_COOKIE = "custody_session"
LOGIN_CSRF_COOKIE = "custody_login_csrf"
# A fixed hash to verify against when the username is unknown, so a wrong name and a
# wrong password take the same time (no username probing by timing).
_DUMMY_HASH = hash_password("not-a-real-password-0")


class LoginRequired(CustodyError):
    """No valid login session: the browser is sent to the login page."""


class CsrfFailed(PermissionDenied):
    """A POST without the session's CSRF token."""


class Refused(PermissionDenied):
    """A refusal the app's error handler writes to the custody log.

    Raised inside a catalog transaction, it is logged only after that transaction has
    rolled back: a second writer opened meanwhile would wait on the first (SQLite's
    write lock, PostgreSQL's chain-head row lock) for ever.
    """

    def __init__(self, viewer: "Viewer | None", message: str, why: str, **detail: object) -> None:
        super().__init__(message)
        self.viewer = viewer
        self.why = why
        self.detail = detail


@dataclass(frozen=True)
class Viewer:
    """The person behind a request."""

    actor: Actor
    login_id: int
    csrf: str
    remote_addr: str

    @property
    def username(self) -> str:
        return self.actor.username

    def can(self, capability: str) -> bool:
        return self.actor.can(capability)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def remote_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --------------------------------------------------------------------------- login / logout
@dataclass
class LoginResult:
    ok: bool
    reason: str = ""  # failed|locked|disabled
    token: str = ""
    locked_until: datetime | None = None


def attempt_login(app: App, username: str, password: str, addr: str) -> LoginResult:
    """Check a password, count failures, lock after too many, open a session on success.

    The argon2 check runs between two short transactions, so a login never holds the
    catalog's write lock (SQLite) while it hashes.
    """
    with app.catalog.session() as s:
        acc = s.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
        stored_hash = acc.password_hash if acc else None
    password_ok = check_password(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    cfg = app.settings.web
    now = utcnow()
    with app.catalog.session() as s:
        acc = s.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
        if acc is None:
            return _refuse(s, username[:64] or "(empty)", addr, "failed", "no such account")
        if acc.disabled:
            return _refuse(s, acc.username, addr, "disabled", "account disabled")
        if acc.locked_until and acc.locked_until > now:
            return _refuse(s, acc.username, addr, "locked", "account locked", acc.locked_until)
        if not password_ok or acc.password_hash != stored_hash:  # a reset in between voids the check
            return _count_failure(s, acc, addr, now, cfg.lockout_failures, cfg.lockout_minutes)
        acc.failed_logins = 0
        acc.locked_until = None
        token = secrets.token_urlsafe(32)
        s.add(LoginSession(token_hash=token_hash(token), account_id=acc.id, csrf_token=secrets.token_hex(32),
                           created_at=now, expires_at=now + timedelta(hours=cfg.session_hours),
                           remote_addr=addr[:64]))
        custody_log.record(s, "login", actor=acc.username, remote_addr=addr, subject=f"account:{acc.username}",
                           detail={"role": acc.role})
        return LoginResult(ok=True, token=token)


def _count_failure(s: Session, acc: Account, addr: str, now: datetime, limit: int, minutes: float) -> LoginResult:
    acc.failed_logins = (acc.failed_logins or 0) + 1
    if acc.failed_logins < limit:
        return _refuse(s, acc.username, addr, "failed", "wrong password")
    acc.locked_until = now + timedelta(minutes=minutes)
    acc.failed_logins = 0
    custody_log.record(s, "admin_change", actor=acc.username, remote_addr=addr, subject=f"account:{acc.username}",
                       detail={"change": "account_locked", "until": acc.locked_until.isoformat(),
                               "after_failures": limit})
    return _refuse(s, acc.username, addr, "locked", "wrong password; account now locked", acc.locked_until)


def _refuse(s: Session, username: str, addr: str, reason: str, why: str,
            locked_until: datetime | None = None) -> LoginResult:
    custody_log.record(s, "login", actor=username, remote_addr=addr, outcome="refused",
                       subject=f"account:{username}", detail={"reason": why})
    return LoginResult(ok=False, reason=reason, locked_until=locked_until)


def logout(app: App, token: str | None, addr: str) -> None:
    if not token:
        return
    with app.catalog.session() as s:
        row = s.execute(select(LoginSession).where(LoginSession.token_hash == token_hash(token))).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            return
        row.revoked_at = utcnow()
        acc = s.get(Account, row.account_id)
        custody_log.record(s, "logout", actor=acc.username if acc else "unknown", remote_addr=addr,
                           subject=f"account:{acc.username if acc else '?'}")


# --------------------------------------------------------------------------- per-request checks
def load_viewer(app: App, token: str | None, addr: str) -> Viewer:
    if not token:
        raise LoginRequired("please log in")
    now = utcnow()
    with app.catalog.session() as s:
        row = s.execute(select(LoginSession).where(LoginSession.token_hash == token_hash(token))).scalar_one_or_none()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise LoginRequired("the login session has ended")
        acc = s.get(Account, row.account_id)
        if acc is None or acc.disabled:
            raise LoginRequired("the account is disabled")
        actor = actor_of(acc)
        return Viewer(actor=actor, login_id=row.id, csrf=row.csrf_token, remote_addr=addr)


def log_refusal(app: App, request: Request, viewer: Viewer | None, why: str, **detail: object) -> None:
    """Write a refused attempt to the custody log (its own transaction: the request fails)."""
    with app.catalog.session() as s:
        custody_log.record(s, "refused", actor=viewer.username if viewer else "anonymous", outcome="refused",
                           remote_addr=remote_addr(request), subject=f"{request.method} {request.url.path}",
                           detail={"reason": why, **({"role": viewer.actor.role} if viewer else {}), **detail})


async def _csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get("x-csrf-token")
    if not sent:
        form = await request.form()  # cached by Starlette: the route's Form fields still work
        sent = str(form.get("csrf") or "")
    return bool(sent) and hmac.compare_digest(sent, expected)


def allow(*capabilities: str):  # noqa: ANN201 - a FastAPI dependency factory
    """Dependency: a logged-in viewer holding at least one of `capabilities` (CSRF checked on POST)."""

    async def dependency(request: Request) -> Viewer:
        app: App = request.app.state.custody
        addr = remote_addr(request)
        try:
            viewer = await run_in_threadpool(load_viewer, app, request.cookies.get(SESSION_COOKIE), addr)
        except LoginRequired:
            await run_in_threadpool(log_refusal, app, request, None, "not logged in")
            raise
        if request.method == "POST" and not await _csrf_ok(request, viewer.csrf):
            await run_in_threadpool(log_refusal, app, request, viewer, "missing or wrong CSRF token")
            raise tagged(CsrfFailed("the form's CSRF token is missing or wrong; reload the page"), "error.csrf")
        if capabilities and not any(viewer.can(c) for c in capabilities):
            await run_in_threadpool(log_refusal, app, request, viewer, "role lacks capability",
                                    capability="|".join(capabilities))
            what = "/".join(capabilities)
            raise tagged(PermissionDenied(f"{viewer.username} ({viewer.actor.role}) may not {what}"), "error.role",
                         user=viewer.username, role=viewer.actor.role, what=what)
        return viewer

    return dependency
