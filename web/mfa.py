"""TOTP second factor (RFC 6238, PyPI `pyotp`) and one-time recovery codes (issue 17).

Roles named in `[web].require_mfa_for` (and any account that enrolled) pass a code after
the password: the login session stays `mfa_pending` until then.  An account without a
confirmed secret is enrolled at its first login: it is shown a new secret, confirms it with
a code, and receives RECOVERY_CODES one-time codes (only their SHA-256 is kept).  A code's
time step is accepted once (no replay).  Every enrolment, success and failure is a custody
event (`mfa`).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp

from catalog.models import Account

RECOVERY_CODES = 10
STEP = 30
ISSUER = "Custody"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(acc: Account, station: str) -> str:
    return pyotp.TOTP(acc.totp_secret or "").provisioning_uri(name=acc.username, issuer_name=f"{ISSUER} {station}")


def _norm(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def code_hash(code: str) -> str:
    return hashlib.sha256(_norm(code).encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    out = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def check_totp(acc: Account, code: str, now: datetime) -> int | None:
    """The accepted time step (one step of clock skew either way), or None."""
    code = code.strip().replace(" ", "")
    if not acc.totp_secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(acc.totp_secret)
    step = int(now.timestamp()) // STEP
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            if acc.totp_last_step is not None and candidate <= acc.totp_last_step:
                return None  # this code (or an older one) was used already
            return candidate
    return None


def use_recovery_code(acc: Account, code: str) -> bool:
    """True and the code is spent, when `code` is one of the account's unused recovery codes."""
    if len(_norm(code)) != 10:
        return False
    h = code_hash(code)
    left = list(acc.recovery_codes or [])
    match = next((x for x in left if hmac.compare_digest(x, h)), None)
    if match is None:
        return False
    left.remove(match)
    acc.recovery_codes = left  # a new list: the JSON column sees the change
    return True
