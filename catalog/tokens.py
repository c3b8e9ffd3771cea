"""Bearer tokens for machines (issue 15): terminals' upload tokens and the enforcement system's API tokens.

A token is 32 random bytes, shown once when it is made; the catalog keeps only its SHA-256
(a stolen database dump authenticates nobody).  Every use and every refusal is a custody event
with the station and the remote address, written by the caller that knows them.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.accounts import Actor, actor_of
from catalog.models import Account, ApiToken, Device, DeviceToken, utcnow
from core.errors import CustodyError, NotFound

DEVICE_PREFIX = "cdt_"
API_PREFIX = "cat_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# --------------------------------------------------------------------------- device tokens
@dataclass(frozen=True)
class DeviceIdentity:
    token_id: int
    device_id: int
    serial: str
    kind: str
    unit_id: int | None

    @property
    def actor(self) -> str:
        return f"device:{self.serial}"


def enrol_device(s: Session, serial: str, actor: str, station: str) -> tuple[str, bool, list[int]]:
    """Make a new upload token for a device (created as a terminal when the catalog does not know it).
    Earlier tokens of the device are revoked (one live token per device).  Returns
    (token, device created, ids of tokens revoked)."""
    serial = serial.strip()
    if not serial or len(serial) > 64:
        raise CustodyError("a device serial is 1 to 64 characters")
    dev = s.execute(select(Device).where(Device.serial == serial)).scalar_one_or_none()
    created = dev is None
    if dev is None:
        dev = Device(serial=serial, kind="terminal", source="enrol")
        s.add(dev)
        s.flush()
    now = utcnow()
    revoked = []
    for old in s.execute(select(DeviceToken).where(DeviceToken.device_id == dev.id,
                                                   DeviceToken.revoked_at.is_(None))).scalars():
        old.revoked_at, old.revoked_by = now, actor
        revoked.append(old.id)
    token = new_token(DEVICE_PREFIX)
    row = DeviceToken(device_id=dev.id, token_hash=token_hash(token), created_at=now, created_by=actor)
    s.add(row)
    s.flush()
    custody_log.record(s, "device_enrolled", actor=actor, subject=f"device:{serial}",
                       detail={"token_id": row.id, "device_created": created, "revoked_tokens": revoked,
                               "station": station, "kind": dev.kind})
    return token, created, revoked


def revoke_device(s: Session, serial: str, actor: str, station: str) -> list[int]:
    dev = s.execute(select(Device).where(Device.serial == serial)).scalar_one_or_none()
    if dev is None:
        raise NotFound(f"no device {serial!r}")
    live = s.execute(select(DeviceToken).where(DeviceToken.device_id == dev.id,
                                               DeviceToken.revoked_at.is_(None))).scalars().all()
    if not live:
        raise NotFound(f"device {serial} has no live upload token")
    now = utcnow()
    for t in live:
        t.revoked_at, t.revoked_by = now, actor
    ids = [t.id for t in live]
    custody_log.record(s, "device_token_revoked", actor=actor, subject=f"device:{serial}",
                       detail={"token_ids": ids, "station": station})
    return ids


def check_device_token(s: Session, token: str | None) -> tuple[DeviceIdentity | None, str]:
    """(identity, "") for a live token, else (None, why).  Constant-time on the stored hash."""
    if not token:
        return None, "no bearer token"
    h = token_hash(token)
    row = s.execute(select(DeviceToken).where(DeviceToken.token_hash == h)).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, h):
        return None, "unknown token"
    dev = s.get(Device, row.device_id)
    if row.revoked_at is not None:
        return None, f"revoked token of device {dev.serial if dev else row.device_id}"
    if dev is None:
        return None, "token of a device no longer in the catalog"
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now  # to the minute: a chunk a second need not each write the token row
    return DeviceIdentity(row.id, dev.id, dev.serial, dev.kind, dev.unit_id), ""


# --------------------------------------------------------------------------- API tokens
def issue_api_token(s: Session, username: str, name: str | None, actor: str, station: str) -> tuple[str, int]:
    acc = s.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
    if acc is None:
        raise NotFound(f"no account named {username!r}")
    if acc.disabled:
        raise CustodyError(f"account {username!r} is disabled")
    token = new_token(API_PREFIX)
    row = ApiToken(account_id=acc.id, token_hash=token_hash(token), name=name, created_by=actor)
    s.add(row)
    s.flush()
    custody_log.record(s, "api_token_issued", actor=actor, subject=f"account:{username}",
                       detail={"token_id": row.id, "name": name, "role": acc.role, "station": station})
    return token, row.id


def revoke_api_token(s: Session, token_id: int, actor: str, station: str) -> ApiToken:
    row = s.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token {token_id}")
    if row.revoked_at is not None:
        raise NotFound(f"API token {token_id} is already revoked")
    row.revoked_at, row.revoked_by = utcnow(), actor
    acc = s.get(Account, row.account_id)
    custody_log.record(s, "api_token_revoked", actor=actor, subject=f"account:{acc.username if acc else '?'}",
                       detail={"token_id": token_id, "station": station})
    return row


def check_api_token(s: Session, token: str | None) -> tuple[Actor | None, int | None, str]:
    """(the account acting, token id, "") for a live token of an enabled account, else (None, id, why)."""
    if not token:
        return None, None, "no bearer token"
    h = token_hash(token)
    row = s.execute(select(ApiToken).where(ApiToken.token_hash == h)).scalar_one_or_none()
    if row is None:
        return None, None, "unknown token"
    if row.revoked_at is not None:
        return None, row.id, "revoked token"
    acc = s.get(Account, row.account_id)
    if acc is None or acc.disabled:
        return None, row.id, "the token's account is disabled"
    row.last_used_at = utcnow()
    return actor_of(acc), row.id, ""
