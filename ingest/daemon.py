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
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from custody.app import App
from indexer.catalog import custody_log
from indexer.catalog.models import DockSession, OffloadItem
from ingest import volume as vol
from ingest.offload import clean_spool_tmp
from ingest.pipeline import DeviceBusy, DeviceLock, IngestResult, ingest_volume
from ingest.upload import clean_spool, spool_dir, upload_pending

log = logging.getLogger("custody.daemon")


@dataclass
class Watched:
    signature: tuple[int, int, int]
    since: float
    done_signature: tuple[int, int, int] | None = None
    future: Future[IngestResult] | None = None


def recover(app: App, actor: str) -> None:
    removed = clean_spool_tmp(spool_dir(app))
    with app.catalog.session() as s:
        candidates = s.execute(select(DockSession).where(DockSession.station == app.station,
                                                         DockSession.state.in_(("offloading", "offloaded")))).scalars().all()
        stale = [d for d in candidates if not _in_use(app, d)]
        for d in stale:
            d.state = "incomplete"
            d.message = "station stopped during offload (crash or kill); the next dock finishes it"
            custody_log.record(s, "session_incomplete", actor=actor, session_id=d.id, outcome="failed",
                               detail={"reason": d.message})
        # An item half-copied when the station died goes back to pending (its .part is gone).
        ids = [d.id for d in stale]
        if ids:
            s.execute(update(OffloadItem).where(OffloadItem.session_id.in_(ids), OffloadItem.phase == "pending",
                                                OffloadItem.status.is_(None))
                      .values(phase="done", status="skipped", reason="interrupted by a station restart"))
    if removed or stale:
        log.warning("recovered: %d half-written spool file(s) removed, %d session(s) marked incomplete",
                    removed, len(stale))


def _in_use(app: App, d: DockSession) -> bool:
    """A session whose device lock is held belongs to a live process (e.g. `custody ingest`)."""
    if d.device is None:
        return False
    try:
        with DeviceLock(spool_dir(app), d.device.serial):
            return False
    except DeviceBusy:
        return True


class Daemon:
    def __init__(self, app: App, *, exit_when_idle: bool = False) -> None:
        self.app = app
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
        self._start_indexers()
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
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            return None
        wake = self.wake

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):  # noqa: ANN001, ANN201
                wake.set()

        obs = Observer()
        obs.schedule(Handler(), str(self.root), recursive=False)
        obs.daemon = True
        obs.start()
        return obs

    def _start_indexers(self) -> None:
        try:
            from indexer.worker import run_worker
        except ImportError:
            log.warning("indexer worker not available; recordings stay queued for `custody index --pending`")
            return
        self.indexing = self.app.settings.indexer.workers > 0
        for i in range(self.app.settings.indexer.workers):
            wid = f"{self.app.station}/indexer-{i}"
            self._start_thread(wid, lambda w=wid: run_worker(self.app, self.stop, w))

    # ---------------------------------------------------------------- dock watching
    def _poll(self) -> None:
        now = time.monotonic()
        present = {p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")} if self.root.is_dir() else set()
        for gone in set(self.watched) - present:
            w = self.watched.pop(gone)
            if w.future is None or w.future.done():
                log.info("undocked: %s", gone.name)
        for p in sorted(present):
            try:
                sig = vol.signature(p)
            except OSError:
                continue
            w = self.watched.get(p)
            if w is None:
                self.watched[p] = Watched(sig, now)
                log.info("docked: %s (waiting %.1fs for it to settle)", p.name, self.st.settle_seconds)
                continue
            if w.future is not None and not w.future.done():
                continue
            if sig != w.signature:
                w.signature, w.since = sig, now
                continue
            if now - w.since < self.st.settle_seconds or sig == w.done_signature or sig[0] == 0:
                continue
            w.future = self.pool.submit(self._offload, p)

    def _offload(self, p: Path) -> IngestResult:
        try:
            res = ingest_volume(self.app, p, actor=self.actor)
        except Exception as e:  # noqa: BLE001 - one broken device never stops the daemon
            log.exception("offload of %s failed: %s", p.name, e)
            res = IngestResult(volume=str(p), state="failed", message=str(e))
        w = self.watched.get(p)
        if w is not None:
            try:
                w.done_signature = vol.signature(p)
                w.signature = w.done_signature
            except OSError:
                pass
        self.results.append(res)
        c = res.counts
        dev = (res.device or {}).get("serial", "?")
        log.info("%s [%s] %s: stored %d, duplicate %d, flagged %d, refused %d, skipped %d%s", p.name, dev, res.state,
                 c["stored"], c["duplicate"], c["flagged"], c["refused"], c["skipped"],
                 f" — {res.message}" if res.message else "")
        self.wake.set()
        return res

    def _idle(self) -> bool:
        if self.hold_idle.is_set():
            return False
        if any(w.future is None or not w.future.done() for w in self.watched.values()):
            return False
        from indexer.catalog.models import Job

        with self.app.catalog.session() as s:
            waiting = s.execute(select(OffloadItem.id).where(OffloadItem.phase == "copied").limit(1)).first()
            jobs = s.execute(select(Job.id).where(Job.state.in_(("pending", "running"))).limit(1)).first()
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
                clean_spool(self.app)
            except Exception as e:  # noqa: BLE001 - keep the loop alive; the next pass retries
                log.exception("uploader: %s", e)
            self.stop.wait(self.st.upload_retry_seconds)
