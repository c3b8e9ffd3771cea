"""`custody daemon`: watch the dock root, offload each docked volume once it has settled.

Mounting a file system raises no inotify event in the parent directory, so the dock root
is polled as well as watched.  Several devices are offloaded at once (bounded); one slow
or broken device never blocks the others.  Recovery at start-up turns work a crash left
behind into explicit state: half-written spool files are removed (the device still has
the original), sessions that were offloading become 'incomplete', and copies waiting in
the spool are uploaded.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from catalog.app import App
from catalog import custody_log
from catalog.jobs import OPEN_STATES
from catalog.models import DockSession, Job, OffloadItem
from ingest import volume as vol
from ingest.pipeline import ingest_volume
from ingest.spool import DeviceBusy, Spool
from ingest.states import ACTIVE_SESSION_STATES, ITEM_STATUSES, ItemStatus, Phase, SessionState
from ingest.task import FileResult, IngestResult
from ingest import field
from ingest.upload import close_drained_sessions, upload_pending

try:  # optional: without watchdog the dock root is only polled (every [station].poll_seconds)
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
except ImportError:  # pragma: no cover - watchdog is a declared dependency
    FileSystemEventHandler, Observer = object, None

log = logging.getLogger("custody.daemon")

# (name, worker loop, how many): a loop claims jobs of its kinds until the stop event is set.
JobWorker = tuple[str, Callable[[App, threading.Event, str], None], int]


@dataclass
class Watched:
    signature: tuple[int, int, int]
    since: float  # when the signature last changed
    first_seen: float = 0.0
    done_at: float | None = None
    done_signature: tuple[int, int, int] | None = None
    retry_at: float | None = None  # try again while docked (device busy elsewhere, spool full)
    retries: int = 0
    future: Future[IngestResult] | None = None


RETRY_SECONDS = 10.0
MAX_RETRIES = 6  # then the volume waits for a change or a re-dock, and the log says why
MAX_SETTLE_FACTOR = 20  # a volume that never stops changing (a log file) is offloaded anyway after this many settles


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _file_outcome(f: FileResult) -> str:
    """One file's outcome in words: stored and verified (the store re-confirmed size and SHA-256),
    duplicate, flagged, refused or skipped - with the reason."""
    why = f" — {_printable(f.reason)}" if f.reason else ""
    digest = f" (sha256 {f.sha256[:12]}…)" if f.sha256 else ""
    if f.status == ItemStatus.STORED:
        return f"stored, verified{digest}"
    if f.status == ItemStatus.FLAGGED:
        return f"stored, verified, flagged{digest}{why}"
    if f.status == ItemStatus.DUPLICATE:
        return f"duplicate: already stored{digest}"
    return f"{f.status}{why}"


def shown(name: str) -> str:
    """A dock directory's name for a log line: escaped, never raw bytes or terminal controls."""
    text = vol.display_name(os.fsencode(name))
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def recover(app: App, actor: str) -> None:
    spool = Spool.of(app.settings)
    removed = spool.clean_tmp()
    with app.catalog.session() as s:
        candidates = s.execute(select(DockSession).where(DockSession.station == app.station,
                                                         DockSession.state.in_(ACTIVE_SESSION_STATES))).scalars().all()
        stale = [d for d in candidates if not _in_use(spool, d)]
        for d in stale:
            d.state = SessionState.INCOMPLETE
            d.message = "station stopped during offload (crash or kill); the next dock finishes it"
            custody_log.record(s, "session_incomplete", actor=actor, session_id=d.id, outcome="failed",
                               detail={"reason": d.message})
        # An item half-copied when the station died goes back to pending (its .part is gone).
        ids = [d.id for d in stale]
        if ids:
            s.execute(update(OffloadItem).where(OffloadItem.session_id.in_(ids), OffloadItem.phase == Phase.PENDING,
                                                OffloadItem.status.is_(None))
                      .values(phase=Phase.DONE, status=ItemStatus.SKIPPED, reason="interrupted by a station restart"))
    if removed or stale:
        log.warning("recovered: %d half-written spool file(s) removed, %d session(s) marked incomplete",
                    removed, len(stale))


def _in_use(spool: Spool, d: DockSession) -> bool:
    """A session whose device lock is held belongs to a live process (e.g. `custody ingest`)."""
    if d.device is None:
        return False
    try:
        with spool.lock(d.device.serial):
            return False
    except DeviceBusy:
        return True


class _Wake(FileSystemEventHandler):
    """Any change in the dock root wakes the poll loop."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self.wake = wake

    def on_any_event(self, event) -> None:  # noqa: ANN001
        self.wake.set()


class Daemon:
    def __init__(self, app: App, *, exit_when_idle: bool = False, job_workers: Sequence[JobWorker] = ()) -> None:
        self.app = app
        self.job_workers = tuple(job_workers)
        self.st = app.settings.station
        self.root = app.settings.path(self.st.dock_root)
        self.actor = f"station:{app.station}"
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.exit_when_idle = exit_when_idle
        self.watched: dict[Path, Watched] = {}
        self.pool = ThreadPoolExecutor(max_workers=self.st.max_concurrent_devices, thread_name_prefix="offload")
        self.threads: list[threading.Thread] = []
        self.results: list[IngestResult] = []
        self.indexing = False
        self.hold_idle = threading.Event()  # set while something (e.g. the simulator) is about to dock

    # ---------------------------------------------------------------- lifecycle
    def run(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        recover(self.app, self.actor)
        observer = self._start_watchdog()
        self._start_thread("uploader", self._uploader_loop)
        self._start_job_workers()
        log.info("watching %s (station %s, catalog %s, store %s)", self.root, self.app.station,
                 self.app.catalog.engine.url.render_as_string(hide_password=True), self.app.store.url)
        try:
            while not self.stop.is_set():
                self._poll()
                if self.exit_when_idle and self._idle():
                    break
                self.wake.wait(self.st.poll_seconds)
                self.wake.clear()
        finally:
            self.stop.set()
            if observer is not None:
                observer.stop()
            self.pool.shutdown(wait=True)
            for t in self.threads:
                t.join(timeout=30)

    def _start_thread(self, name: str, target) -> None:  # noqa: ANN001
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def _start_watchdog(self):  # noqa: ANN202
        if Observer is None:
            return None
        obs = Observer()
        obs.schedule(_Wake(self.wake), str(self.root), recursive=False)
        obs.daemon = True
        obs.start()
        return obs

    def _start_job_workers(self) -> None:
        """The job queue's workers (index, retain, ...) are given by the shell that starts the
        daemon: ingest knows the queue, not the packages that work it."""
        for name, run_worker, count in self.job_workers:
            for i in range(count):
                wid = f"{self.app.station}/{name}-{i}"
                self._start_thread(wid, lambda w=wid, run=run_worker: run(self.app, self.stop, w))
                self.indexing = True

    # ---------------------------------------------------------------- dock watching
    def _docked(self) -> set[Path]:
        """Directories in the dock root (a mounted volume); links and plain files are not volumes."""
        if not self.root.is_dir():
            return set()
        try:
            return {p for p in self.root.iterdir()
                    if not p.name.startswith(".") and not p.is_symlink() and p.is_dir()}
        except OSError:
            return set()

    def _poll(self) -> None:
        now = time.monotonic()
        present = self._docked()
        for gone in set(self.watched) - present:
            self.watched.pop(gone)
            log.info("undocked: %s", shown(gone.name))
        for p in sorted(present):
            w = self.watched.get(p)
            if w is not None and w.future is not None and not w.future.done():
                continue  # being offloaded: no rescan competing with the copy for the device
            try:
                sig = vol.signature(p)
            except OSError:
                continue
            if w is None:
                self.watched[p] = Watched(sig, now, first_seen=now)
                log.info("docked: %s (waiting %.1fs for it to settle)", shown(p.name), self.st.settle_seconds)
                continue
            if sig != w.signature:
                w.signature, w.since = sig, now
            if self._due(w, sig, now):
                w.retry_at = None
                w.future = self.pool.submit(self._offload, p, w)

    def _due(self, w: Watched, sig: tuple[int, int, int], now: float) -> bool:
        if sig[0] == 0:
            return False  # an empty mount point: nothing to offload yet
        if w.retry_at is not None:
            return now >= w.retry_at
        if sig == w.done_signature:
            return False
        settled = now - w.since >= self.st.settle_seconds
        # A device that keeps writing (a log file) never settles: offload it anyway, now and then;
        # files still being written are waited for or skipped per file.
        forced = now - (w.done_at or w.first_seen) >= MAX_SETTLE_FACTOR * max(self.st.settle_seconds, 1.0)
        return settled or forced

    def _offload(self, p: Path, w: Watched) -> IngestResult:
        try:
            res = ingest_volume(self.app, p, actor=self.actor, should_stop=self.stop.is_set)
        except Exception as e:  # noqa: BLE001 - one broken device never stops the daemon
            log.exception("offload of %s failed: %s", shown(p.name), e)
            res = IngestResult(volume=vol.shown_path(p), state=SessionState.FAILED, message=str(e))
        # Only this dock's own record is updated (the volume may have been pulled and docked again).
        try:
            w.done_signature = w.signature = vol.signature(p)
        except OSError:
            pass
        w.done_at = time.monotonic()
        if res.retry and not self.stop.is_set() and w.retries < MAX_RETRIES:
            w.retries += 1
            w.retry_at = w.done_at + RETRY_SECONDS
        elif not res.retry:
            w.retries = 0
        self.results.append(res)
        c = res.counts
        dev = (res.device or {}).get("serial", "?")
        if w.retry_at and res.state == SessionState.FAILED:
            # Busy (this device offloads from another volume, or elsewhere) or a full spool: not a
            # failure of this dock, which is simply tried again while the device stays docked.
            log.info("%s [%s] waiting: %s; trying again in %.0fs", shown(p.name), dev, res.message, RETRY_SECONDS)
            self.wake.set()
            return res
        for f in res.files:  # the story of each file, for whoever reads the station's log
            log.info("%s [%s] %s: %s", shown(p.name), dev, _printable(f.path), _file_outcome(f))
        log.info("%s [%s] %s: stored %d, duplicate %d, flagged %d, refused %d, skipped %d%s%s", shown(p.name), dev,
                 res.state, *(c[s] for s in ITEM_STATUSES),
                 f" — {res.message}" if res.message else "",
                 f"; trying again in {RETRY_SECONDS:.0f}s" if w.retry_at else "")
        self.wake.set()
        return res

    def final_results(self) -> list[IngestResult]:
        """The last result per docked volume (an attempt that was retried does not count)."""
        last: dict[str, IngestResult] = {}
        for r in self.results:
            last[r.volume] = r
        return list(last.values())

    def _idle(self) -> bool:
        if self.hold_idle.is_set():
            return False
        for w in self.watched.values():
            if w.future is not None and not w.future.done():
                return False  # an offload running
            if w.future is None and w.signature[0] > 0:
                return False  # a volume still settling (an empty mount point is not waiting for anything)
            if w.retry_at is not None:
                return False  # a retry due
        with self.app.catalog.session() as s:
            waiting = s.execute(select(OffloadItem.id).join(DockSession, DockSession.id == OffloadItem.session_id)
                                .where(OffloadItem.phase == Phase.COPIED, DockSession.station == self.app.station)
                                .limit(1)).first()
            jobs = s.execute(select(Job.id).where(Job.state.in_(OPEN_STATES)).limit(1)).first()
        return waiting is None and (jobs is None or not self.indexing)

    # ---------------------------------------------------------------- uploader
    def _uploader_loop(self) -> None:
        """Drains copies left in the spool (storage outage, crash); retries with backoff."""
        delay = self.st.upload_retry_seconds
        while not self.stop.is_set():
            try:
                n, outage = upload_pending(self.app, self.actor)
                if outage:
                    log.warning("object store unavailable, %s; copies stay in the spool, retrying in %.0fs",
                                outage, delay)
                    self.stop.wait(delay)
                    delay = min(delay * 2, 300)
                    continue
                delay = self.st.upload_retry_seconds
                if n:
                    log.info("uploaded %d recording(s) from the spool", n)
                    for _ in range(close_drained_sessions(self.app, self.actor)):
                        log.info("a dock that ended incomplete is complete now: its spool copies are stored")
                Spool.of(self.app.settings).clean(self.app.catalog)
                field.expire_uploads(self.app)  # incomplete field uploads past upload_expiry_hours (issue 15)
                clean_partial = getattr(self.app.store, "clean_partial", None)
                if clean_partial is not None and (removed := clean_partial()):
                    log.warning("store: removed %d partial object file(s) left by an interrupted write", removed)
            except Exception as e:  # noqa: BLE001 - keep the loop alive; the next pass retries
                log.exception("uploader: %s", e)
            self.stop.wait(self.st.upload_retry_seconds)
