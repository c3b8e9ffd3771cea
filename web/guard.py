"""Flood and forgery guards for the web app (issue 17).

* `RateLimiter`: fixed one-minute windows per key (an address, an account name); over the
  limit a request answers 429.  In memory, per process (`custody serve` is one process).
* `RefusalDigest`: refusals of anonymous requests (not logged in, rate limited, a forged
  login form) are aggregated per address and minute: the first one of a window is written
  to the custody log at once, the rest are counted and written as ONE event when the window
  ends (or the app stops), so a flood cannot grow the hash-chained log by a row per request.
* `PasswordGate`: at most N argon2 verifications at once (each takes 64 MiB); the others
  wait a little, then are told the server is busy.
* `LoginCsrf`: the login form's double-submit token is signed by the app (HMAC with a key
  the process draws at start) and expires, so a cookie + form pair an attacker made up, or
  one from yesterday, is refused; a POST whose Origin is another site is refused too.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

WINDOW = 60.0
MAX_ID = 2**31 - 1  # catalog ids are INTEGER on PostgreSQL; anything larger names nothing
MAX_SEQ = 2**63 - 1  # custody_events.seq is BIGINT


def valid_id(n: int) -> bool:
    return 0 < n <= MAX_ID
_MAX_KEYS = 20000  # beyond this many keys the oldest windows are forgotten (memory stays bounded)


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> bool:
        """Count one request; False when `key` is over its limit in this window."""
        if self.per_minute <= 0:
            return True
        now = self.clock()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= WINDOW:
                start, count = now, 0
            count += 1
            self._windows[key] = (start, count)
            if len(self._windows) > _MAX_KEYS:
                for k in sorted(self._windows, key=lambda k: self._windows[k][0])[: _MAX_KEYS // 2]:
                    del self._windows[k]
            return count <= self.per_minute

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)


@dataclass
class _Bucket:
    start: float
    first_at: datetime
    count: int = 0
    paths: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)


class RefusalDigest:
    """Anonymous refusals: one custody event per address per minute, plus a count."""

    MAX_ADDRESSES = 200  # per window; a flood from more addresses is counted under "*"

    def __init__(self, write: Callable[[str, dict[str, Any], str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write  # (remote_addr, detail, subject) -> writes one `refused` event
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def refuse(self, addr: str, subject: str, reason: str, detail: dict[str, Any] | None = None) -> None:
        now = self.clock()
        first = False
        with self._lock:
            due = self._take_due(now)
            key = addr if (addr in self._buckets or len(self._buckets) < self.MAX_ADDRESSES) else "*"
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(start=now, first_at=datetime.now(timezone.utc))
                first = key != "*"
            else:
                b.count += 1
                if len(b.paths) < 20 or subject in b.paths:
                    b.paths[subject] += 1
                b.reasons[reason] += 1
        for k, bucket in due:
            self._write_summary(k, bucket)
        if first:
            self.write(addr, {"reason": reason, **(detail or {}),
                              "aggregated": "later refusals from this address within a minute are counted"},
                       subject)

    def _take_due(self, now: float) -> list[tuple[str, _Bucket]]:
        due = [(k, b) for k, b in self._buckets.items() if now - b.start >= WINDOW]
        for k, _ in due:
            del self._buckets[k]
        return [(k, b) for k, b in due if b.count]

    def _write_summary(self, addr: str, b: _Bucket) -> None:
        self.write(addr, {"reason": "anonymous requests refused (aggregated)", "count": b.count,
                          "since": b.first_at.isoformat(), "paths": dict(b.paths.most_common(20)),
                          "reasons": dict(b.reasons)}, "refusals from one address")

    def has_due(self) -> bool:
        now = self.clock()
        with self._lock:
            return any(b.count and now - b.start >= WINDOW for b in self._buckets.values())

    def flush(self, force: bool = True) -> None:
        with self._lock:
            items = list(self._buckets.items()) if force else self._take_due(self.clock())
            if force:
                self._buckets.clear()
        for k, b in items:
            if b.count:
                self._write_summary(k, b)


class PasswordGate:
    """Bounds concurrent argon2 work; records the peak for the station page and tests."""

    def __init__(self, at_once: int, wait_seconds: float = 10.0) -> None:
        self._sem = threading.BoundedSemaphore(max(1, at_once))
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def run(self, fn: Callable[[], bool]) -> bool | None:
        """fn() under the gate; None when no slot freed up in time (the server is busy)."""
        if not self._sem.acquire(timeout=self.wait_seconds):
            return None
        try:
            with self._lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            return fn()
        finally:
            with self._lock:
                self.in_flight -= 1
            self._sem.release()


class LoginCsrf:
    """Signed, expiring double-submit tokens for the login form (hex only)."""

    TTL = 3600

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)

    def _mac(self, nonce: str, exp: str) -> str:
        return hmac.new(self.key, f"{nonce}{exp}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        nonce = secrets.token_hex(16)
        exp = f"{int(time.time()) + self.TTL:08x}"
        return nonce + exp + self._mac(nonce, exp)

    def valid(self, cookie: str, form: str) -> bool:
        if not cookie or not form or len(form) != 72 or not hmac.compare_digest(cookie, form):
            return False
        nonce, exp, mac = form[:32], form[32:40], form[40:]
        try:
            expires = int(exp, 16)
        except ValueError:
            return False
        return hmac.compare_digest(mac, self._mac(nonce, exp)) and expires >= time.time()


def same_origin(origin: str | None, sec_fetch_site: str | None, host: str | None) -> bool:
    """A browser's POST says where the form came from; another site's is refused."""
    if sec_fetch_site and sec_fetch_site not in ("same-origin", "none"):
        return False
    if origin and origin != "null" and host:
        return origin.split("://", 1)[-1].rstrip("/") == host
    return origin != "null"
