"""The `retain` job: apply a recording's retention decision to its store lock.

Ingest queues one when a recording is stored, the indexer when a recording is linked or
retimed; neither imports retention.  The decision and the lock land in the same
transaction that marks the job done (`jobs.finish`), so a retaken job never applies twice.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Collection

from catalog import jobs
from catalog.app import App
from catalog.models import Media
from core.errors import NotFound
from retention.lock import apply_retention

log = logging.getLogger("custody.retention")


def run_job(app: App, lease: jobs.Lease, actor: str | None = None) -> str:
    """Run one claimed `retain` job; a failure is recorded on the job, never raised."""
    cfg = app.settings.indexer
    try:
        with app.catalog.session() as s:
            media = s.get(Media, lease.media_id) if lease.media_id is not None else None
            if media is None:
                raise NotFound(f"job {lease.job_id} names no stored recording")
            apply_retention(app, s, media, actor=actor)
            jobs.finish(s, lease)
        return "done"
    except jobs.LeaseLost as e:
        log.warning("%s", e)
        return "lost"
    except Exception as e:  # noqa: BLE001 - a worker must survive any one recording
        reason = f"{type(e).__name__}: {e}"
        log.warning("retain job %s (media %s) failed: %s", lease.job_id, lease.media_id, reason)
        return jobs.fail(app.catalog, lease, reason, cfg.max_attempts, cfg.retry_seconds)


def run_pending(app: App, worker_id: str, *, actor: str | None = None,
                only_ids: Collection[int] | None = None) -> dict[str, int]:
    """Work the `retain` jobs until none is claimable."""
    return jobs.drain(app.catalog, app.settings.indexer, worker_id, jobs.RETAIN_KINDS,
                      lambda lease: run_job(app, lease, actor), only_ids)


def run_worker(app: App, stop_event: threading.Event, worker_id: str) -> None:
    """The daemon's retention thread: claim, run, repeat until `stop_event` is set."""
    jobs.work(app.catalog, app.settings.indexer, worker_id, jobs.RETAIN_KINDS, lambda lease: run_job(app, lease),
              stop_event)
