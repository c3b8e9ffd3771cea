"""Redactions asked for in the web app, as catalog jobs of kind `redact`.

A reviewer's request is a job with its parameters (the plan, the reason, who asked and from
where; `jobs.params`), so that:
  * redactions run one at a time per web server (`Worker`, one thread in `custody serve`)
    instead of one ffmpeg per request on a station's two cores;
  * a server that stops or dies mid-redaction finishes it after it starts again: its worker
    takes back the jobs it held (nothing half-made was stored: `make_redaction` stores the copy
    and its catalog rows at the end), and any other server's worker takes them when the lease
    runs out;
  * a copy made just before the server died (stored and catalogued, the job not yet marked
    done) is found by the job's id in its redaction log and not made twice.

A request that cannot succeed (the recording was purged, the plan is empty, the account lost
the right) fails at once with its reason; a failure of the machinery (ffmpeg, the store) is
retried like any job ([indexer] max_attempts, retry_seconds).
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update

from catalog import jobs
from catalog.accounts import resolve_actor
from catalog.app import App
from catalog.models import Job, Redaction, utcnow
from core.errors import CustodyError
from disclose import derived, redact

log = logging.getLogger("custody.redact")

KIND = "redact"


def plan_of(p: dict[str, Any]) -> redact.Plan:
    """The plan a job was given (stored with `dataclasses.asdict`)."""
    return redact.Plan(start=p["start"], end=p["end"], faces=p["faces"],
                       boxes=[redact.ManualBox(**b) for b in p["boxes"]], mute=[tuple(r) for r in p["mute"]],
                       still=p["still"], detect_every=p["detect_every"])


def request(app: App, media_id: int, plan: redact.Plan, reason: str, username: str,
            remote_addr: str | None) -> int:
    """Queue a redaction; its job id."""
    with app.catalog.session() as s:
        job = jobs.enqueue(s, media_id, KIND, params={"plan": asdict(plan), "reason": reason,
                                                      "username": username, "remote_addr": remote_addr})
        return job.id


@dataclass(frozen=True)
class Status:
    job_id: int
    media_id: int | None
    username: str
    state: str  # pending | running | done | failed
    derived_id: int | None
    error: str | None


def status(app: App, job_id: int) -> Status | None:
    with app.catalog.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.kind != KIND or not job.params:
            return None
        p = job.params
        return Status(job.id, job.media_id, p.get("username", ""), job.state, p.get("derived_id"),
                      p.get("error") or (job.last_error if job.state == "failed" else None))


def _made_by(app: App, job_id: int, media_id: int | None) -> int | None:
    """The derived recording this job already made (a crash between storing it and finishing)."""
    with app.catalog.session() as s:
        rows = s.execute(select(Redaction.derived_media_id, Redaction.log)
                         .where(Redaction.original_media_id == media_id)).all()
    return next((d for d, entry in rows if (entry or {}).get("job") == job_id), None)


def _finish(app: App, lease: jobs.Lease, **result: Any) -> None:
    with app.catalog.session() as s:
        job = s.get(Job, lease.job_id)
        job.params = {**(job.params or {}), **result}
        s.flush()
        jobs.finish(s, lease)


def run(app: App, lease: jobs.Lease) -> str:
    """Run one claimed `redact` job; every failure is recorded on the job, never raised."""
    cfg = app.settings.indexer
    with app.catalog.session() as s:
        p = dict(s.get(Job, lease.job_id).params or {})
    try:
        made = _made_by(app, lease.job_id, lease.media_id)
        if made is None:
            with jobs.renewed(app.catalog, lease, cfg.job_lease_seconds):  # longer than a lease
                with app.catalog.session() as s:
                    actor = resolve_actor(s, p["username"])
                made = derived.make_redaction(app, str(lease.media_id), plan_of(p["plan"]), p["reason"], actor=actor,
                                              remote_addr=p.get("remote_addr"), job_id=lease.job_id).derived.id
        _finish(app, lease, derived_id=made)
        return "done"
    except jobs.LeaseLost as e:
        log.warning("%s", e)
        return "lost"
    except CustodyError as e:  # this request cannot succeed: no retry
        log.warning("redaction job %s (recording %s) refused: %s", lease.job_id, lease.media_id, e)
        return jobs.fail(app.catalog, lease, str(e) or type(e).__name__, max_attempts=lease.attempts,
                         retry_seconds=cfg.retry_seconds)
    except Exception as e:  # noqa: BLE001 - ffmpeg, the store: tried again like any job
        log.exception("redaction job %s (recording %s) failed", lease.job_id, lease.media_id)
        return jobs.fail(app.catalog, lease, f"{type(e).__name__}: {e}", cfg.max_attempts, cfg.retry_seconds)


class Worker:
    """The web server's redaction worker: one thread, one redaction at a time."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.prefix = f"{app.station}/web-redact/"
        self.worker_id = f"{self.prefix}{os.getpid()}"
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._take_back()
        except Exception:  # noqa: BLE001 - catalog away at start: the leases run out instead
            log.exception("could not take back the redactions of the previous web server")
        self.thread = threading.Thread(target=jobs.work, name="redact-worker", daemon=True,
                                       args=(self.app.catalog, self.app.settings.indexer, self.worker_id, (KIND,),
                                             lambda lease: run(self.app, lease), self.stop_event))
        self.thread.start()

    def _take_back(self) -> None:
        """Jobs a web server of this station held when it died (its process is gone): pending
        again now, not after their lease runs out."""
        with self.app.catalog.session() as s:
            held = s.execute(select(Job.id, Job.locked_by).where(
                Job.kind == KIND, Job.state == "running", Job.locked_by.startswith(self.prefix, autoescape=True))).all()
            dead = [job_id for job_id, by in held if not _alive(by[len(self.prefix):])]
            if dead:
                s.execute(update(Job).where(Job.id.in_(dead), Job.state == "running")
                          .values(state="pending", locked_by=None, lease_until=None, not_before=None,
                                  updated_at=utcnow(), last_error="taken back: the web server running it stopped")
                          .execution_options(synchronize_session=False))
        if dead:
            log.warning("redaction job(s) %s left running by a stopped web server: queued again", dead)

    def stop(self) -> None:
        self.stop_event.set()


def _alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
