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

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from catalog.accounts import Actor, actor_of, check_password, hash_password
from catalog.app import App
from catalog.duty import account_lapse, disable_for_duty, station_today
from core.errors import CustodyError, PermissionDenied
from catalog import custody_log
from catalog.models import Account, LoginFailure, LoginSession, utcnow
from web.guard import LoginCsrf, PasswordGate, RateLimiter, RefusalDigest
from web.i18n import tagged

SESSION_COOKIE = "custody_session"
LOGIN_CSRF_COOKIE = "custody_login_csrf"
# A fixed hash to verify against when the username is unknown, so a wrong name and a
# wrong password take the same time (no username probing by timing).
_DUMMY_HASH = hash_password("not-a-real-password-0")


class LoginRequired(CustodyError):
    """No valid login session: the browser is sent to the login page."""


class MfaRequired(LoginRequired):
    """The password was right but the second factor (TOTP) is still owed: sent to /login/mfa."""


class Guards:
    """Per-app flood guards (web/guard.py), built from `[web]` settings."""

    def __init__(self, app: App) -> None:
        cfg = app.settings.web
        self.login_by_addr = RateLimiter(cfg.login_per_minute_per_address)
        self.login_by_account = RateLimiter(cfg.login_per_minute_per_account)
        self.anonymous = RateLimiter(cfg.anonymous_per_minute_per_address)
        self.passwords = PasswordGate(cfg.password_checks_at_once)
        self.login_csrf = LoginCsrf()
        self.mfa_by_session = RateLimiter(5)  # wrong codes per pending login and minute

        def write(addr: str, detail: dict, subject: str) -> None:
            with app.catalog.session() as s:
                custody_log.record(s, "refused", actor="anonymous", outcome="refused", remote_addr=addr,
                                   subject=subject[:200], detail=detail)

        self.refusals = RefusalDigest(write)


def guards_of(request: Request) -> Guards:
    return request.app.state.guards


class CsrfFailed(PermissionDenied):
    """A POST without the session's CSRF token."""


class Refused(PermissionDenied):
    """A refusal the app's error handler writes to the custody log.

    Raised inside a catalog transaction, it is logged only after that transaction has
    rolled back: a second writer opened meanwhile would wait on the first (SQLite's
    write lock, PostgreSQL's chain-head row lock) for ever.
    """

    def __init__(self, viewer: "Viewer | None", message: str, why: str, *, as_missing: BaseException | None = None,
                 **detail: object) -> None:
        super().__init__(message)
        self.viewer = viewer
        self.why = why
        self.detail = detail
        # An id outside the viewer's scope answers exactly as a missing one (404, same text),
        # so ids cannot be probed; the refusal is still logged with the real reason.
        self.as_missing = as_missing


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
    reason: str = ""  # failed|locked|disabled|busy (logged; the browser is told only "failed" or "busy")
    token: str = ""
    locked_until: datetime | None = None
    mfa: bool = False  # a second factor is owed before the session works
    delay: float = 0.0  # seconds to wait before answering (an account under attack from new addresses)


def mfa_required(app: App, acc: Account) -> bool:
    return acc.role in app.settings.web.require_mfa_for or acc.totp_enrolled_at is not None


def attempt_login(app: App, username: str, password: str, addr: str, gate: PasswordGate | None = None) -> LoginResult:
    """Check a password, count failures per (account, address), open a session on success.

    The argon2 check runs between two short transactions (never holding the catalog's
    write lock) and under `gate` (bounded concurrency).  A pair (account, address) that
    failed `[web].lockout_failures` times is locked for `[web].lockout_minutes`: an
    outsider who knows a name locks out only their own address.  An account failing from
    addresses it never logged in from is answered slowly (a delay, not a lock).
    """
    cfg = app.settings.web
    name = username[:64] or "(empty)"
    addr = addr[:64]
    now = utcnow()
    with app.catalog.session() as s:
        pair = _pair(s, name, addr)
        if pair is not None and pair.locked_until and pair.locked_until > now:
            return _refuse(s, name, addr, "locked", "locked for this address after failed logins",
                           pair.locked_until)
        acc = s.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
        stored_hash = acc.password_hash if acc else None
        known_source = acc is not None and s.execute(
            select(LoginSession.id).where(LoginSession.account_id == acc.id, LoginSession.remote_addr == addr,
                                          LoginSession.mfa_pending.is_(False)).limit(1)).first() is not None
    gate = gate or PasswordGate(cfg.password_checks_at_once)
    checked = gate.run(lambda: check_password(stored_hash or _DUMMY_HASH, password))
    with app.catalog.session() as s:
        if checked is None:
            return _refuse(s, name, addr, "busy", "too many password checks at once; try again")
        password_ok = bool(checked) and stored_hash is not None
        acc = s.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
        if acc is None:
            return _count_failure(s, name, addr, now, cfg, known_source, "no such account")
        if acc.disabled:
            why = "account disabled" + (f": {acc.disabled_reason}" if acc.disabled_reason else "")
            return _refuse(s, acc.username, addr, "disabled", why)
        lapse = account_lapse(s, acc, station_today(app.settings.tz))
        if lapse:  # access follows duty: the officer's certificate ended or was revoked
            disable_for_duty(s, acc, lapse, by=f"station:{app.settings.station.name}", remote_addr=addr)
            return _refuse(s, acc.username, addr, "disabled", f"account disabled: {lapse}")
        if acc.locked_until and acc.locked_until > now:
            return _refuse(s, acc.username, addr, "locked", "account locked", acc.locked_until)
        if not password_ok or acc.password_hash != stored_hash:  # a reset in between voids the check
            return _count_failure(s, acc.username, addr, now, cfg, known_source, "wrong password")
        s.execute(delete(LoginFailure).where(LoginFailure.username == acc.username,
                                             LoginFailure.remote_addr == addr))
        acc.failed_logins = 0
        acc.locked_until = None
        second = mfa_required(app, acc)
        if not second:
            acc.last_login_at = now
        token = secrets.token_urlsafe(32)
        s.add(LoginSession(token_hash=token_hash(token), account_id=acc.id, csrf_token=secrets.token_hex(32),
                           created_at=now, expires_at=now + (timedelta(minutes=10) if second else
                                                             timedelta(hours=cfg.session_hours)),
                           remote_addr=addr, mfa_pending=second))
        detail = {"role": acc.role, **({"second_factor": "required"} if second else {})}
        custody_log.record(s, "login", actor=acc.username, remote_addr=addr, subject=f"account:{acc.username}",
                           detail=detail)
        return LoginResult(ok=True, token=token, mfa=second)


def known_source(app: App, username: str, addr: str) -> bool:
    """Has this account ever completed a login from this address?"""
    with app.catalog.session() as s:
        acc_id = s.execute(select(Account.id).where(Account.username == username)).scalar_one_or_none()
        return acc_id is not None and s.execute(
            select(LoginSession.id).where(LoginSession.account_id == acc_id, LoginSession.remote_addr == addr[:64],
                                          LoginSession.mfa_pending.is_(False)).limit(1)).first() is not None


def _pair(s: Session, name: str, addr: str) -> LoginFailure | None:
    return s.execute(select(LoginFailure).where(LoginFailure.username == name,
                                                LoginFailure.remote_addr == addr)).scalar_one_or_none()


def _count_failure(s: Session, name: str, addr: str, now: datetime, cfg, known_source: bool,  # noqa: ANN001
                   why: str) -> LoginResult:
    pair = _pair(s, name, addr)
    if pair is None:
        pair = LoginFailure(username=name, remote_addr=addr, failures=0, last_at=now)
        s.add(pair)
    if pair.last_at and now - pair.last_at > timedelta(minutes=cfg.lockout_minutes):
        pair.failures = 0  # old failures are forgiven
    pair.failures = (pair.failures or 0) + 1
    pair.last_at = now
    # Forget pairs idle for a day (the table holds recent attempts, not history: that is the log).
    s.execute(delete(LoginFailure).where(LoginFailure.last_at < now - timedelta(days=1),
                                         or_(LoginFailure.locked_until.is_(None), LoginFailure.locked_until < now)))
    s.flush()
    # The account's failures from everywhere in the lockout window: many means an attack.
    recent = s.scalar(select(func.coalesce(func.sum(LoginFailure.failures), 0)).where(
        LoginFailure.username == name,
        LoginFailure.last_at > now - timedelta(minutes=cfg.lockout_minutes))) or 0
    delay = 0.0
    if not known_source and recent >= cfg.lockout_failures:
        delay = min(cfg.unknown_source_delay_seconds, 0.25 * 2 ** (recent - cfg.lockout_failures))
    if pair.failures < cfg.lockout_failures:
        r = _refuse(s, name, addr, "failed", why)
        r.delay = delay
        return r
    pair.locked_until = now + timedelta(minutes=cfg.lockout_minutes)
    pair.failures = 0
    custody_log.record(s, "admin_change", actor=name, remote_addr=addr, subject=f"account:{name}",
                       detail={"change": "account_locked", "scope": "address", "address": addr,
                               "until": pair.locked_until.isoformat(), "after_failures": cfg.lockout_failures})
    r = _refuse(s, name, addr, "locked", f"{why}; now locked for this address", pair.locked_until)
    r.delay = delay
    return r


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
        if row.mfa_pending:
            raise MfaRequired("the second factor is still needed")
        # Access follows duty: a linked officer's lapsed certificate ends the session now
        # (disabled in this transaction, which commits before the refusal is raised).
        lapse = account_lapse(s, acc, station_today(app.settings.tz)) if acc.officer_badge else None
        if lapse:
            disable_for_duty(s, acc, lapse, by=f"station:{app.settings.station.name}", remote_addr=addr)
        else:
            viewer = Viewer(actor=actor_of(acc), login_id=row.id, csrf=row.csrf_token, remote_addr=addr)
    if lapse:
        raise LoginRequired("the account is disabled")
    return viewer


def log_refusal(app: App, request: Request, viewer: Viewer | None, why: str, **detail: object) -> None:
    """Write a refused attempt to the custody log (its own transaction: the request fails).

    Anonymous refusals are aggregated per address and minute (`RefusalDigest`)."""
    if viewer is None and getattr(request.app.state, "guards", None) is not None:
        guards_of(request).refusals.refuse(remote_addr(request), f"{request.method} {request.url.path}"[:200],
                                           why, {k: v for k, v in detail.items()})
        return
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
        request.state.viewer = viewer  # error handlers log 400/404s with who asked
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
