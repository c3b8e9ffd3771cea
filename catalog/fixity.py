"""Scheduled fixity: every stored object re-read and re-hashed at least once per `fixity_days`.

The schedule is rolling.  Every `[fixity].schedule_minutes` a station queues `fixity` jobs for
(a) each stored object last verified more than 90 % of `fixity_days` ago (overdue soon), and
(b) the oldest-verified share of the rest, sized by the time since the last pass so the whole
store is covered within the window (objects stored on one busy day are spread out instead of
all coming due together).
`media.verified_at` is when an object was last proved good (at its upload, then by each check).

Only one station schedules at a time (a PostgreSQL advisory lock taken with `try`; SQLite's
write transaction is exclusive), and a job is claimed with `FOR UPDATE SKIP LOCKED` like every
other job, so one station does a given object's check.  The check is `custody verify`'s own
(`catalog.audit._check_object`), with the byte stream rate-limited to `bytes_per_second`.

Each check is a custody event (`fixity`, outcome ok|failed, station recorded): failures show on
the station page and in `custody verify --recent`.  A store that does not answer is not a
finding: the job is retried later (`jobs.fail`), no event written.

Register with the shell's job dispatch: kind `fixity` -> `run_job(app, lease, actor)`; the
daemon's loop is `run_worker(app, stop_event, worker_id)` (it also schedules).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, text
from sqlalchemy.orm import Session

from catalog import custody_log, jobs
from catalog.app import App
from catalog.audit import _check_object
from catalog.models import CustodyEvent, Job, Media, utcnow
from core.errors import StorageUnavailable

log = logging.getLogger("custody.fixity")
KIND = "fixity"
SOON = 0.9  # an object is queued once 90 % of the window has passed since it was last proved good
SCHEDULE_LOCK_KEY = int.from_bytes(b"fixity\0\0", "big", signed=True)


class RateLimit:
    """A token bucket shared by a station's fixity readers (bytes per second; 0 = none)."""

    def __init__(self, per_second: int) -> None:
        self.rate = per_second
        self.allowance = float(per_second)
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            self.allowance = min(float(self.rate), self.allowance + (now - self.last) * self.rate)
            self.last = now
            self.allowance -= n
            wait = -self.allowance / self.rate if self.allowance < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


_limits: dict[int, RateLimit] = {}
_limits_lock = threading.Lock()


def _limit_for(app: App) -> RateLimit:
    with _limits_lock:
        return _limits.setdefault(id(app), RateLimit(app.settings.fixity.bytes_per_second))


def schedule(app: App, now: datetime | None = None, batch: int = 5000) -> int:
    """Queue the checks coming due (see the module text).  Returns how many were queued."""
    cfg = app.settings.fixity
    t = now or utcnow()
    window = timedelta(days=cfg.fixity_days)
    with app.catalog.session() as s:
        if s.bind.dialect.name == "postgresql" and not s.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SCHEDULE_LOCK_KEY}).scalar():
            return 0  # another station is scheduling right now
        open_job = exists().where(Job.media_id == Media.id, Job.kind == KIND, Job.state.in_(jobs.OPEN_STATES))
        base = select(Media.id).where(Media.status == "stored", ~open_job)
        overdue = list(s.execute(base.where(or_(Media.verified_at.is_(None), Media.verified_at < t - window * SOON))
                                 .order_by(Media.verified_at.nulls_first(), Media.id).limit(batch)).scalars())
        total = s.scalar(select(func.count(Media.id)).where(Media.status == "stored")) or 0
        # the rolling share: the part of the store that time since the last scheduling pass stands for
        last = s.scalar(select(func.max(Job.created_at)).where(Job.kind == KIND))
        elapsed = (t - last).total_seconds() if last else cfg.schedule_minutes * 60
        share = math.floor(total * min(max(elapsed, 0.0), window.total_seconds())
                           / max(window.total_seconds() * SOON, 1.0))
        extra: list[int] = []
        if share > len(overdue):
            rest = base.where(Media.id.not_in(overdue)) if overdue else base
            extra = list(s.execute(rest
                                   .order_by(Media.verified_at.nulls_first(), Media.id)
                                   .limit(min(share - len(overdue), batch))).scalars())
        for mid in overdue + extra:
            s.add(Job(kind=KIND, media_id=mid, state="pending"))
        return len(overdue) + len(extra)


def run_job(app: App, lease: jobs.Lease, actor: str | None = None) -> str:
    """Check one object; the custody event and the job's end land in one transaction."""
    actor = actor or f"station:{app.station}"
    with app.catalog.session() as s:
        m = s.get(Media, lease.media_id) if lease.media_id is not None else None
        row = (m.id, m.storage_key, m.sha256, m.size) if m is not None and m.status == "stored" else None
    if row is None:  # purged (or never was): nothing to check
        with app.catalog.session() as s:
            jobs.finish(s, lease)
        return "done"
    limit = _limit_for(app)
    outage: list[BaseException] = []

    def read(chunks: Iterator[bytes]) -> Iterator[bytes]:
        try:
            for c in chunks:
                limit.take(len(c))
                yield c
        except StorageUnavailable as e:
            outage.append(e)
            raise

    t0 = time.monotonic()
    _mid, n, prob = _check_object(app, *row, read=read)
    if outage:
        reason = f"object store unavailable: {outage[0]}"
        log.warning("fixity check of media %s deferred: %s", row[0], reason)
        return jobs.fail(app.catalog, lease, reason, app.settings.indexer.max_attempts, 60.0)
    try:
        with app.catalog.session() as s:
            jobs.finish(s, lease)
            m = s.get(Media, row[0])
            if prob is None:
                m.verified_at = utcnow()
            custody_log.record(s, KIND, actor=actor, outcome="ok" if prob is None else "failed", media_id=row[0],
                               subject=f"sha256:{row[2]}",
                               detail={"key": row[1], "bytes": n, "seconds": round(time.monotonic() - t0, 3),
                                       "job_id": lease.job_id, "problem": prob.message if prob else None})
    except jobs.LeaseLost:
        log.warning("fixity job %s was retaken by another worker; its result stands, ours is dropped", lease.job_id)
        return "lost"
    if prob is not None:
        log.error("FIXITY FAILURE: %s", prob.message)
    return "done"


def run_pending(app: App, worker_id: str, *, actor: str | None = None) -> dict[str, int]:
    """Work every claimable fixity job now (tests, `custody index --pending`-style runs)."""
    cfg = app.settings.indexer
    done: dict[str, int] = {}
    while True:
        lease = jobs.claim(app.catalog, worker_id, cfg.job_lease_seconds, cfg.max_attempts, kinds=jobs.FIXITY_KINDS)
        if lease is None:
            return done
        state = run_job(app, lease, actor)
        done[state] = done.get(state, 0) + 1


def run_worker(app: App, stop_event: threading.Event, worker_id: str) -> None:
    """The daemon's fixity thread: schedule now and then, claim, check, repeat until stopped."""
    cfg, icfg = app.settings.fixity, app.settings.indexer
    next_schedule = 0.0
    while not stop_event.is_set():
        try:
            if time.monotonic() >= next_schedule:
                if (n := schedule(app)):
                    log.info("fixity: %d object(s) queued for their scheduled check", n)
                next_schedule = time.monotonic() + cfg.schedule_minutes * 60
            lease = jobs.claim(app.catalog, worker_id, icfg.job_lease_seconds, icfg.max_attempts,
                               kinds=jobs.FIXITY_KINDS)
        except Exception:  # noqa: BLE001 - catalog briefly away: wait and try again, never die
            log.exception("fixity worker %s could not reach the job queue", worker_id)
            stop_event.wait(icfg.idle_poll_seconds)
            continue
        if lease is None:
            stop_event.wait(icfg.idle_poll_seconds)
            continue
        run_job(app, lease)


@dataclass
class Finding:
    at: datetime
    media_id: int | None
    station: str | None
    outcome: str
    problem: str | None
    subject: str | None


def recent(s: Session, since: datetime, *, failures_only: bool = False, limit: int = 1000) -> list[Finding]:
    """Scheduled checks since an instant (newest first), from the custody log."""
    q = select(CustodyEvent).where(CustodyEvent.action == KIND, CustodyEvent.at >= since)
    if failures_only:
        q = q.where(CustodyEvent.outcome != "ok")
    rows = s.execute(q.order_by(CustodyEvent.seq.desc()).limit(limit)).scalars()
    return [Finding(e.at, e.media_id, e.station, e.outcome, (e.detail or {}).get("problem"), e.subject) for e in rows]


def summary(s: Session, since: datetime) -> dict[str, Any]:
    """Counts of scheduled checks since an instant: {"checked", "failed", "stations": {name: n}}."""
    rows = s.execute(select(CustodyEvent.station, CustodyEvent.outcome, func.count())
                     .where(CustodyEvent.action == KIND, CustodyEvent.at >= since)
                     .group_by(CustodyEvent.station, CustodyEvent.outcome)).all()
    out: dict[str, Any] = {"checked": 0, "failed": 0, "stations": {}}
    for station, outcome, n in rows:
        out["checked"] += n
        if outcome != "ok":
            out["failed"] += n
        out["stations"][station or "?"] = out["stations"].get(station or "?", 0) + n
    return out
