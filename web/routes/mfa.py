"""The second step of a login: TOTP enrolment and verification, recovery codes."""
from __future__ import annotations

import hmac
from datetime import timedelta
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from catalog import custody_log
from catalog.app import App
from catalog.models import Account, LoginSession, utcnow
from web import mfa
from web.auth import SESSION_COOKIE, guards_of, log_refusal, remote_addr, token_hash
from web.pages import render
from web.routes.session import safe_next

router = APIRouter()


def _pending(s, token: str | None) -> tuple[LoginSession, Account] | None:  # noqa: ANN001 - Session
    if not token:
        return None
    row = s.execute(select(LoginSession).where(LoginSession.token_hash == token_hash(token))).scalar_one_or_none()
    if row is None or not row.mfa_pending or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    acc = s.get(Account, row.account_id)
    if acc is None or acc.disabled:
        return None
    return row, acc


@router.get("/login/mfa")
def mfa_page(request: Request, next: str = "/", error: str = "") -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        found = _pending(s, request.cookies.get(SESSION_COOKIE))
        if found is None:
            return RedirectResponse("/login", status_code=303)
        row, acc = found
        enrol = acc.totp_enrolled_at is None
        if enrol and not acc.totp_secret:
            acc.totp_secret = mfa.new_secret()
            custody_log.record(s, "mfa", actor=acc.username, remote_addr=remote_addr(request),
                               subject=f"account:{acc.username}", detail={"step": "enrolment_started"})
        return render(request, "mfa.html", None, login_csrf=row.csrf_token, next=safe_next(next), enrol=enrol,
                      secret=acc.totp_secret if enrol else "",
                      uri=mfa.provisioning_uri(acc, app.settings.station.name) if enrol else "",
                      error=error == "wrong", username=acc.username)


@router.post("/login/mfa")
def mfa_submit(request: Request, code: str = Form(""), csrf: str = Form(""), next: str = Form("/")) -> Response:
    app: App = request.app.state.custody
    addr = remote_addr(request)
    target = safe_next(next)
    codes: list[str] = []
    with app.catalog.session() as s:
        found = _pending(s, request.cookies.get(SESSION_COOKIE))
        if found is None:
            return RedirectResponse("/login", status_code=303)
        row, acc = found
        if not csrf or not hmac.compare_digest(csrf, row.csrf_token):
            bad_form = True
        else:
            bad_form = False
            now = utcnow()
            step = mfa.check_totp(acc, code[:64], now) if acc.totp_secret else None
            used_recovery = step is None and acc.totp_enrolled_at is not None and mfa.use_recovery_code(acc, code[:64])
            subject = f"account:{acc.username}"
            if step is None and not used_recovery:
                custody_log.record(s, "mfa", actor=acc.username, remote_addr=addr, outcome="refused",
                                   subject=subject, detail={"step": "enrolment" if acc.totp_enrolled_at is None
                                                            else "verification", "reason": "wrong code"})
                if not guards_of(request).mfa_by_session.hit(str(row.id)) or \
                        not guards_of(request).login_by_account.hit(acc.username):
                    row.revoked_at = now  # too many wrong codes: the password must be given again
                    custody_log.record(s, "mfa", actor=acc.username, remote_addr=addr, outcome="refused",
                                       subject=subject, detail={"reason": "too many wrong codes; login ended"})
                    return RedirectResponse("/login?error=failed", status_code=303)
                return RedirectResponse(f"/login/mfa?error=wrong&next={quote(target)}", status_code=303)
            if step is not None:
                acc.totp_last_step = step
            if acc.totp_enrolled_at is None:
                acc.totp_enrolled_at = now
                codes = mfa.new_recovery_codes()
                acc.recovery_codes = [mfa.code_hash(c) for c in codes]
                custody_log.record(s, "mfa", actor=acc.username, remote_addr=addr, subject=subject,
                                   detail={"step": "enrolled", "recovery_codes": len(codes)})
            else:
                custody_log.record(s, "mfa", actor=acc.username, remote_addr=addr, subject=subject,
                                   detail={"step": "recovery_code_used" if used_recovery else "verified",
                                           "recovery_codes_left": len(acc.recovery_codes or [])})
            row.mfa_pending = False
            row.expires_at = now + timedelta(hours=app.settings.web.session_hours)
            acc.last_login_at = now
    if bad_form:
        log_refusal(app, request, None, "second-factor form without the login's CSRF token")
        return RedirectResponse(f"/login/mfa?next={quote(target)}", status_code=303)
    if codes:
        return render(request, "mfa_codes.html", None, codes=codes, next=target)
    return RedirectResponse(target, status_code=303)
