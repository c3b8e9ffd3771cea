"""Access review (issue 17): who holds privileged access, who has not used an account for a
long time, which accounts are disabled (and why), and recent role and account changes.

Shared by `custody users review` and the auditor's page `/audit/accounts`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Account, CustodyEvent

PRIVILEGED_ROLES = ("administrator", "auditor")
ROLE_CHANGES = ("account_added", "role_changed", "account_disabled", "account_enabled", "mfa_reset")


@dataclass
class Review:
    privileged: list[dict[str, Any]] = field(default_factory=list)
    unused: list[dict[str, Any]] = field(default_factory=list)
    disabled: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    unused_days: int = 90
    changes_days: int = 30

    def as_dict(self) -> dict[str, Any]:
        return {"unused_days": self.unused_days, "changes_days": self.changes_days, "privileged": self.privileged,
                "unused": self.unused, "disabled": self.disabled, "changes": self.changes}


def _row(a: Account) -> dict[str, Any]:
    return {"username": a.username, "role": a.role, "officer": a.officer_badge, "units": list(a.units or []),
            "disabled": a.disabled, "disabled_at": a.disabled_at, "disabled_reason": a.disabled_reason,
            "last_login_at": a.last_login_at, "created_at": a.created_at,
            "mfa": a.totp_enrolled_at is not None}


def review(s: Session, now: datetime, *, unused_days: int = 90, changes_days: int = 30) -> Review:
    out = Review(unused_days=unused_days, changes_days=changes_days)
    accounts = list(s.execute(select(Account).order_by(Account.username)).scalars())
    cutoff = now - timedelta(days=unused_days)
    for a in accounts:
        if a.disabled:
            out.disabled.append(_row(a))
            continue
        if a.role in PRIVILEGED_ROLES:
            out.privileged.append(_row(a))
        if (a.last_login_at or a.created_at) < cutoff:
            out.unused.append(_row(a))
    events = s.execute(select(CustodyEvent).where(CustodyEvent.action == "admin_change",
                                                  CustodyEvent.subject.like("account:%"),
                                                  CustodyEvent.at >= now - timedelta(days=changes_days))
                       .order_by(CustodyEvent.seq.desc()).limit(500)).scalars()
    for e in events:
        change = (e.detail or {}).get("change")
        if change in ROLE_CHANGES:
            out.changes.append({"at": e.at, "seq": e.seq, "account": (e.subject or "")[len("account:"):],
                                "change": change, "by": e.actor, "role": (e.detail or {}).get("role"),
                                "from_role": (e.detail or {}).get("from_role"),
                                "reason": (e.detail or {}).get("reason")})
    return out
