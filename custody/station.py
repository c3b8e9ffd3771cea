"""The station: the dock watcher and the job queue's workers, composed by the shell.

Ingest knows the queue (catalog.jobs) but not the packages that work it; the indexer queues
`retain` jobs without importing retention.  This module is the one place that knows every
kind of job and who runs it.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Collection

from catalog import anchor, fixity
from catalog.app import App
from indexer import worker as index_worker
from ingest.daemon import Daemon, JobWorker
from ingest.spool import Spool
from retention import jobs as retain_worker


def job_workers(app: App) -> list[JobWorker]:
    """Who works the queue in the daemon: `[indexer].workers` indexers and one retention worker."""
    n = app.settings.indexer.workers
    return [("indexer", index_worker.run_worker, n), ("retention", retain_worker.run_worker, 1 if n > 0 else 0),
            ("fixity", fixity.run_worker, app.settings.fixity.workers if n > 0 else 0),
            # custody-log checkpoints (issue 17); the daemon counts every worker as "indexing", hence n > 0
            ("anchor", anchor.run_worker, 1 if n > 0 else 0)]


def daemon(app: App, *, exit_when_idle: bool = False) -> Daemon:
    return Daemon(app, exit_when_idle=exit_when_idle, job_workers=job_workers(app))


def worker_id(prefix: str) -> str:
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}"


def run_pending(app: App, worker: str, *, actor: str | None = None,
                only_ids: Collection[int] | None = None) -> dict[str, int]:
    """Work every job kind until nothing is claimable (index first: indexing queues retain jobs).

    Returns the indexer's counts (what `custody index --pending` reports) plus `retained`.
    """
    done = index_worker.run_pending(app, worker, actor=actor, only_ids=only_ids)
    retained = retain_worker.run_pending(app, worker, actor=actor)
    if retained:
        done["retained"] = sum(retained.values())
    # As the daemon does: spool copies of recordings now stored, verified and indexed are
    # caches; the CLI path removes them too instead of keeping twice the disk (issue 14).
    cleaned = clean_spool(app)
    if cleaned:
        done["spool_cleaned"] = cleaned
    return done


def clean_spool(app: App) -> int:
    """Remove the spool copies whose recordings are stored, verified and indexed (Spool.clean)."""
    return Spool.of(app.settings).clean(app.catalog)
