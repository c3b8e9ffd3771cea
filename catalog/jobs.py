"""The work queue in the catalog's `jobs` table: leased, retried, never done twice.

A worker *claims* a job by taking a lease (state running, locked_by, lease_until,
attempts + 1).  On PostgreSQL the candidate row is picked with
`SELECT ... FOR UPDATE SKIP LOCKED`, so workers on several stations never wait on or
take the same row; on SQLite every write transaction is exclusive (BEGIN IMMEDIATE)
and the claim is one conditional UPDATE ... WHERE state = 'pending'.  Each claim records
the claiming station (`jobs.station`, the catalog's `[station].name`) beside the worker id.

A worker that dies leaves its lease to expire; the next claim retakes the job (the
attempt is counted, and after `max_attempts` the job fails with the reason).  A worker
commits its results only in the same transaction that marks *its own* lease done
(`finish`), so a slow worker whose job was retaken cannot commit a second result.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from catalog.db import Catalog
from catalog.models import Job, Media, utcnow

# index/reindex/retime are the indexer's (reindex: redo even if done; retime: time only);
# retain is retention's (apply the recording's retention decision to its store lock), queued by
# ingest and the indexer, which never import retention; the shell runs each kind's worker.
INDEX_KINDS = ("index", "reindex", "retime")
RETAIN_KINDS = ("retain",)
# fixity: re-read and re-hash one stored object on the rolling schedule (catalog.fixity, issue 16).
FIXITY_KINDS = ("fixity",)
# redact: a redaction a reviewer asked for in the web app (disclose/queue.py); run by the web app.
REDACT_KINDS = ("redact",)
KINDS = (*INDEX_KINDS, *RETAIN_KINDS, *FIXITY_KINDS, *REDACT_KINDS)
OPEN_STATES = ("pending", "running")
MAX_BACKOFF_SECONDS = 3600.0


class LeaseLost(Exception):
    """Another worker holds this job now (our lease expired and it was retaken)."""


@dataclass(frozen=True)
class Lease:
    job_id: int
    kind: str
    media_id: int | None
    attempts: int
    worker_id: str


def enqueue(session: Session, media_id: int, kind: str = "index", params: dict[str, Any] | None = None) -> Job:
    """Add a job unless the same work is already waiting or running for this recording
    (a job with `params` is its own request: always added)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    if params is not None:
        job = Job(kind=kind, media_id=media_id, state="pending", params=params)
        session.add(job)
        session.flush()
        return job
    open_job = session.execute(
        select(Job).where(Job.media_id == media_id, Job.kind == kind, Job.state.in_(OPEN_STATES))
    ).scalars().first()
    if open_job is not None:
        return open_job
    job = Job(kind=kind, media_id=media_id, state="pending")
    session.add(job)
    session.flush()
    return job


def _claimable(now: datetime):  # noqa: ANN202 - a SQL expression
    return or_(
        and_(Job.state == "pending", or_(Job.not_before.is_(None), Job.not_before <= now)),
        and_(Job.state == "running", Job.lease_until < now),  # its worker died or hung
    )


def reap_expired(session: Session, max_attempts: int, now: datetime) -> int:
    """Expired leases whose job has used every attempt: fail them, with the reason."""
    rows = session.execute(
        select(Job).where(Job.state == "running", Job.lease_until < now, Job.attempts >= max_attempts)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for job in rows:
        job.state = "failed"
        job.last_error = (f"lease of {job.locked_by} expired on attempt {job.attempts} of {max_attempts} "
                          "(worker stopped or hung)")
        job.locked_by, job.lease_until = None, None
        _mark_media_failed(session, job)
    return len(rows)


def claim(catalog: Catalog, worker_id: str, lease_seconds: float, max_attempts: int,
          only_ids: Collection[int] | None = None, kinds: Collection[str] | None = None) -> Lease | None:
    """Take the oldest claimable job (of `kinds`, default any), or None when there is nothing to do."""
    with catalog.session() as s:
        now = utcnow()
        reap_expired(s, max_attempts, now)
        q = select(Job).where(_claimable(now)).order_by(Job.id).limit(1)
        if only_ids is not None:
            q = q.where(Job.id.in_(list(only_ids)))
        if kinds is not None:
            q = q.where(Job.kind.in_(list(kinds)))
        job = s.execute(q.with_for_update(skip_locked=True)).scalars().first()
        if job is None:
            return None
        retaken = job.state == "running"
        # The conditional UPDATE is the claim itself: it matches only while the row is still free.
        res = s.execute(
            update(Job).where(Job.id == job.id, _claimable(now))
            .values(state="running", locked_by=worker_id, lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=Job.attempts + 1, updated_at=now, station=catalog.station,
                    last_error=(f"retaken after the lease of {job.locked_by} expired" if retaken else Job.last_error))
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            return None
        s.refresh(job)
        return Lease(job.id, job.kind, job.media_id, job.attempts, worker_id)


def renew(catalog: Catalog, lease: Lease, lease_seconds: float) -> bool:
    """Extend a lease during long work; False when it was lost."""
    with catalog.session() as s:
        res = s.execute(
            update(Job).where(*_ours(lease))
            .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


@contextmanager
def renewed(catalog: Catalog, lease: Lease, lease_seconds: float) -> Iterator[None]:
    """Renew the lease every third of its life on a thread while the body runs (work with no
    natural points to call `renew` between, such as one long ffmpeg run)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(max(1.0, lease_seconds / 3)):
            try:
                if not renew(catalog, lease, lease_seconds):
                    return  # retaken: the body's `finish` will raise LeaseLost
            except Exception:  # noqa: BLE001 - catalog briefly away: the lease has slack, try again
                logging.getLogger("custody.jobs").warning("job %s: lease renewal failed", lease.job_id)

    t = threading.Thread(target=loop, name=f"job-lease-{lease.job_id}", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def _ours(lease: Lease) -> tuple:
    return (Job.id == lease.job_id, Job.state == "running", Job.locked_by == lease.worker_id,
            Job.attempts == lease.attempts)


def finish(session: Session, lease: Lease) -> None:
    """Mark the job done in the caller's transaction (with its results), or raise LeaseLost.

    The UPDATE takes the row lock first, so a competing finish waits and then matches nothing.
    """
    res = session.execute(
        update(Job).where(*_ours(lease))
        .values(state="done", locked_by=None, lease_until=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        raise LeaseLost(f"job {lease.job_id} is no longer held by {lease.worker_id}")


def fail(catalog: Catalog, lease: Lease, reason: str, max_attempts: int, retry_seconds: float) -> str:
    """Record a failed attempt: back to pending after a back-off, or failed for good."""
    with catalog.session() as s:
        job = s.execute(select(Job).where(*_ours(lease)).with_for_update()).scalars().first()
        if job is None:
            return "lost"
        job.last_error = reason[:4000]
        job.locked_by, job.lease_until = None, None
        if job.attempts >= max_attempts:
            job.state = "failed"
            _mark_media_failed(s, job)
        else:
            job.state = "pending"
            delay = min(MAX_BACKOFF_SECONDS, retry_seconds * (2 ** (job.attempts - 1)))
            job.not_before = utcnow() + timedelta(seconds=delay)
        return job.state


def _mark_media_failed(session: Session, job: Job) -> None:
    if job.media_id is None or job.kind not in ("index", "reindex"):
        return
    media = session.get(Media, job.media_id)
    if media is not None and media.index_state != "done":
        media.index_state = "failed"


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: int(n) for state, n in rows}


# --------------------------------------------------------------------------- running a kind of job
RunJob = Callable[[Lease], str]  # run one claimed job; its end state ("done", "pending", "failed", "lost")


def drain(catalog: Catalog, cfg, worker_id: str, kinds: Collection[str], run: RunJob,  # noqa: ANN001
          only_ids: Collection[int] | None = None) -> dict[str, int]:
    """Claim and run jobs of `kinds` until none is claimable; counts by end state
    (`cfg`: the [indexer] settings that hold the lease and attempt limits)."""
    done: dict[str, int] = {}
    while True:
        lease = claim(catalog, worker_id, cfg.job_lease_seconds, cfg.max_attempts, only_ids, kinds=kinds)
        if lease is None:
            return done
        state = run(lease)
        done[state] = done.get(state, 0) + 1


def work(catalog: Catalog, cfg, worker_id: str, kinds: Collection[str], run: RunJob,  # noqa: ANN001
         stop_event: threading.Event) -> None:
    """A daemon worker thread: claim, run, repeat until `stop_event` is set; never dies of an outage."""
    while not stop_event.is_set():
        try:
            lease = claim(catalog, worker_id, cfg.job_lease_seconds, cfg.max_attempts, kinds=kinds)
        except Exception:  # noqa: BLE001 - catalog briefly away: wait and try again, never die
            logging.getLogger("custody.jobs").exception("worker %s could not reach the job queue", worker_id)
            stop_event.wait(cfg.idle_poll_seconds)
            continue
        if lease is None:
            stop_event.wait(cfg.idle_poll_seconds)
            continue
        run(lease)
