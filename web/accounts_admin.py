"""Account changes shared by `custody users ...` and the accounts page.

Every change is an `admin_change` custody event naming who made it.  The last
enabled administrator cannot be disabled (nobody could manage accounts after).
"""
from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from catalog.accounts import ROLES, hash_password
from core.errors import CustodyError
from catalog import custody_log
from catalog.models import Account, LoginFailure, LoginSession, utcnow
from web.i18n import tagged

CHANGES = ("disable", "enable", "unlock")


def account_count(s: Session) -> int:
    return s.scalar(select(func.count(Account.id))) or 0


def enabled_admins(s: Session) -> int:
    return s.scalar(select(func.count(Account.id)).where(Account.role == "administrator",
                                                         Account.disabled.is_(False))) or 0


def parse_units(text: str | None) -> list[str]:
    return [u.strip() for u in (text or "").split(",") if u.strip()]


def apply_change(s: Session, acc: Account, change: str, by: str, *, remote_addr: str | None = None) -> None:
    if change == "disable":
        if acc.disabled:
            raise tagged(CustodyError(f"account {acc.username!r} is already disabled"), "error.account_disabled_already",
                         name=acc.username)
        if acc.role == "administrator" and enabled_admins(s) <= 1:
            raise tagged(CustodyError("this is the last enabled administrator; add another before disabling it"),
                         "error.last_admin")
        acc.disabled = True
        acc.disabled_at = utcnow()
        acc.disabled_reason = f"disabled by {by}"[:200]
        _revoke(s, acc)
    elif change == "enable":
        if not acc.disabled:
            raise tagged(CustodyError(f"account {acc.username!r} is not disabled"), "error.account_not_disabled",
                         name=acc.username)
        acc.disabled = False
        acc.disabled_at = None
        acc.disabled_reason = None
    elif change == "unlock":
        acc.failed_logins = 0
        acc.locked_until = None
        s.execute(delete(LoginFailure).where(LoginFailure.username == acc.username))  # every address
    else:
        raise CustodyError(f"unknown account change {change!r}")
    custody_log.record(s, "admin_change", actor=by, subject=f"account:{acc.username}", remote_addr=remote_addr,
                       detail={"change": f"account_{change}d" if change != "unlock" else "account_unlocked"})


def reset_password(s: Session, acc: Account, password: str, by: str) -> None:
    """New password; lockout cleared; every open login session of the account ends."""
    acc.password_hash = hash_password(password)
    acc.failed_logins = 0
    acc.locked_until = None
    ended = _revoke(s, acc)
    custody_log.record(s, "admin_change", actor=by, subject=f"account:{acc.username}",
                       detail={"change": "password_reset", "sessions_ended": ended})


def set_role(s: Session, acc: Account, role: str, by: str) -> None:
    if role not in ROLES:
        raise CustodyError(f"role must be one of {', '.join(ROLES)}")
    if acc.role == role:
        raise CustodyError(f"account {acc.username!r} is already {role}")
    if acc.role == "administrator" and not acc.disabled and enabled_admins(s) <= 1:
        raise tagged(CustodyError("this is the last enabled administrator; add another before disabling it"),
                     "error.last_admin")
    before = acc.role
    acc.role = role
    ended = _revoke(s, acc)  # sessions carry the old role's pages: log in again
    custody_log.record(s, "admin_change", actor=by, subject=f"account:{acc.username}",
                       detail={"change": "role_changed", "from_role": before, "role": role, "sessions_ended": ended})


def reset_mfa(s: Session, acc: Account, by: str) -> None:
    acc.totp_secret = None
    acc.totp_enrolled_at = None
    acc.totp_last_step = None
    acc.recovery_codes = None
    ended = _revoke(s, acc)
    custody_log.record(s, "admin_change", actor=by, subject=f"account:{acc.username}",
                       detail={"change": "mfa_reset", "sessions_ended": ended})


def _revoke(s: Session, acc: Account) -> int:
    rows = s.execute(select(LoginSession).where(LoginSession.account_id == acc.id,
                                                LoginSession.revoked_at.is_(None))).scalars().all()
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)
