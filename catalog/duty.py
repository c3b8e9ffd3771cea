"""Access follows duty (issue 17): an account linked to an officer (`accounts.officer_badge`)
stops working when that officer's enforcement certificate ends or is revoked.

`lapse_reason` says why an account no longer matches its holder's duty; `enforce_duty`
disables such accounts (their open login sessions end) and writes one `admin_change`
custody event per account naming the reason.  It runs at every login, on every web
request of a linked account, after an officer import and in `custody users review`.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.models import Account, LoginSession, Officer, utcnow

LAPSED_STATUSES = ("revoked", "left")


def station_today(tz: tzinfo = timezone(timedelta(hours=8))) -> date:
    return datetime.now(tz).date()


def lapse_reason(officer: Officer | None, today: date) -> str | None:
    """Why the officer's certificate no longer covers duty today (None: it does)."""
    if officer is None:
        return None
    if officer.status in LAPSED_STATUSES:
        when = f" on {officer.status_changed_on.isoformat()}" if officer.status_changed_on else ""
        return f"officer {officer.badge} certificate {officer.status}{when}"
    if officer.certified_to is not None and officer.certified_to < today:
        return f"officer {officer.badge} certificate ended on {officer.certified_to.isoformat()}"
    return None


def account_lapse(s: Session, acc: Account, today: date) -> str | None:
    if not acc.officer_badge:
        return None
    officer = s.execute(select(Officer).where(Officer.badge == acc.officer_badge)).scalar_one_or_none()
    return lapse_reason(officer, today)


def disable_for_duty(s: Session, acc: Account, reason: str, *, by: str, remote_addr: str | None = None) -> None:
    now = utcnow()
    acc.disabled = True
    acc.disabled_at = now
    acc.disabled_reason = reason[:200]
    ended = 0
    for row in s.execute(select(LoginSession).where(LoginSession.account_id == acc.id,
                                                    LoginSession.revoked_at.is_(None))).scalars():
        row.revoked_at = now
        ended += 1
    custody_log.record(s, "admin_change", actor=by, subject=f"account:{acc.username}", remote_addr=remote_addr,
                       detail={"change": "account_disabled", "automatic": True, "reason": reason,
                               "officer": acc.officer_badge, "sessions_ended": ended})


def enforce_duty(s: Session, today: date, *, by: str, only: Account | None = None,
                 remote_addr: str | None = None) -> list[tuple[str, str]]:
    """Disable every enabled account whose officer's certificate has lapsed; [(username, reason)]."""
    if only is not None:
        accounts = [only] if not only.disabled else []
    else:
        accounts = list(s.execute(select(Account).where(Account.disabled.is_(False),
                                                        Account.officer_badge.is_not(None))).scalars())
    done = []
    for acc in accounts:
        reason = account_lapse(s, acc, today)
        if reason:
            disable_for_duty(s, acc, reason, by=by, remote_addr=remote_addr)
            done.append((acc.username, reason))
    return done
