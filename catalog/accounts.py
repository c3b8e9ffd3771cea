"""Accounts and roles: who is acting, and may they.

Every command that changes evidence acts as a named account: `--user NAME`, else the
operating-system user mapped to an account (accounts.os_user), else the account whose
username equals the OS user.  The daemon acts as `station:<name>` (a system actor).
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.errors import CustodyError, NotFound, PermissionDenied
from catalog import custody_log
from catalog.models import Account

ROLES = ("inspector", "reviewer", "administrator", "auditor")
# What each role may do; a route or command names the capability it needs.
CAPABILITIES: dict[str, set[str]] = {
    "inspector": {"view_own"},
    "reviewer": {"view", "stream", "link", "export", "tag", "review", "share"},
    "administrator": {"view", "stream", "link", "export", "tag", "review", "share", "admin", "retention", "hold",
                      "correct_clock", "import", "reports", "users"},
    "auditor": {"view", "audit", "reports"},
    # An operating-system user at the station with no account: may read, may not change evidence.
    "local": {"view", "reports"},
}
BOOTSTRAP_ROLE = "administrator"  # acting OS user while the catalog has no accounts at all

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Actor:
    username: str
    role: str
    account_id: int | None
    units: tuple[str, ...] = ()
    badge: str | None = None  # the officer this account is (inspectors: whose recordings are "mine")

    def can(self, capability: str) -> bool:
        return capability in CAPABILITIES.get(self.role, set())


SYSTEM_ROLE = "system"


def system_actor(station: str) -> Actor:
    return Actor(username=f"station:{station}", role=SYSTEM_ROLE, account_id=None)


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise CustodyError("a password needs at least 8 characters")
    return _hasher.hash(password)


def check_password(hashed: str | None, password: str) -> bool:
    if not hashed:
        return False
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def resolve_actor(session: Session, username: str | None = None) -> Actor:
    """The account acting now.  Unknown or disabled accounts are refused, never guessed."""
    if username:
        acc = session.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
        if acc is None:
            raise PermissionDenied(f"no account named {username!r} (create it with `custody users add`)")
    else:
        me = os_user()
        acc = session.execute(
            select(Account).where(or_(Account.os_user == me, Account.username == me))
            .order_by(Account.os_user.is_(None))
        ).scalars().first()
        if acc is None:
            # Fresh station (no accounts yet): the OS user bootstraps as administrator, by name.
            # Once accounts exist, an unmapped OS user may only read.
            none_yet = session.execute(select(Account.id).limit(1)).first() is None
            return Actor(username=f"os:{me}", role=BOOTSTRAP_ROLE if none_yet else "local", account_id=None)
    if acc.disabled:
        raise PermissionDenied(f"account {acc.username!r} is disabled")
    return actor_of(acc)


def actor_of(acc: Account) -> Actor:
    return Actor(username=acc.username, role=acc.role, account_id=acc.id, units=tuple(acc.units or ()),
                 badge=acc.officer_badge)


def require(session: Session, actor: Actor, capability: str, subject: str = "") -> None:
    """Refuse (and log the refusal) when the actor's role lacks the capability."""
    if not actor.can(capability):
        custody_log.record(session, "refused", actor=actor.username, outcome="refused", subject=subject,
                           detail={"capability": capability, "role": actor.role})
        session.commit()
        if actor.role == "local":
            raise PermissionDenied(
                f"{actor.username} is not mapped to an account and may only read; pass --user NAME or map it "
                f"with `custody users add NAME --role ROLE --os-user {actor.username[3:]}`")
        raise PermissionDenied(f"{actor.username} ({actor.role}) may not {capability}")


def add_account(session: Session, username: str, role: str, *, password: str | None = None,
                display_name: str | None = None, os_user_name: str | None = None,
                units: list[str] | None = None, badge: str | None = None,
                created_by: str = "bootstrap") -> Account:
    if role not in ROLES:
        raise CustodyError(f"role must be one of {', '.join(ROLES)}")
    if session.execute(select(Account).where(Account.username == username)).scalar_one_or_none():
        raise CustodyError(f"account {username!r} already exists")
    acc = Account(username=username, role=role, display_name=display_name, os_user=os_user_name,
                  password_hash=hash_password(password) if password else None, units=units or [],
                  officer_badge=badge, created_by=created_by)
    session.add(acc)
    session.flush()
    custody_log.record(session, "admin_change", actor=created_by, subject=f"account:{username}",
                       detail={"change": "account_added", "role": role, "units": units or [], "badge": badge})
    return acc


def get_account(session: Session, username: str) -> Account:
    acc = session.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
    if acc is None:
        raise NotFound(f"no account named {username!r}")
    return acc
