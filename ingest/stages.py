"""The stages of one dock, in order.  `ingest_volume` (ingest/pipeline.py) runs them over a
`DockTask` (ingest/task.py); read this list first:

    recognise        scan the volume, find the device profile that claims it, read the identity
    open_session     hold the device (one offload per device), open its dock session
    refuse_and_skip  record what is never read: links, device nodes, unlisted folders, another kind's files
    offload          copy each recording to the spool, hashing as it reads; each durable copy goes
                     to an upload worker at once, so storing overlaps the next copy
    store            store what this device left in the spool; each file's result
    wipe             delete device files whose copy is stored and verified (when asked)
    finish           close the session: complete, or incomplete and why

A stage that settles the result (`task.end`) skips the ones after it.  Once a session is open,
any fault in a stage closes it as incomplete (`end_interrupted`): nothing is left "offloading",
what reached the spool is still stored, nothing is wiped.  Every step keeps its state in
`offload_items` (pending -> copied -> stored -> wiped), so a SIGKILL, a pulled cable or a
storage outage resumes where it stopped, never dropping or duplicating a recording.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import update
from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.leases import HeldLease, LeaseHeld
from catalog.models import DockSession, OffloadItem, utcnow
from core.errors import DeviceGone, SpoolFull, StorageIntegrityError, StorageUnavailable
from ingest import items
from ingest import volume as vol
from ingest.profiles import IdentityError, read_identity, recognise as match_profile, station_profiles
from ingest.session import open_session as open_dock_session, record_unrecognised
from ingest.sidecar import find_sidecar, read_sidecar
from ingest.spool import DeviceBusy
from ingest.states import RESUMABLE_SESSION_STATES, ItemStatus, Phase, SessionState
from ingest.task import DockTask, FileResult
from ingest.upload import note_error, store_item, upload_pending
from ingest.wipe import CHANGED, wipe_session

log = logging.getLogger("custody.ingest")
Stage = Callable[[DockTask], None]


def recognise(task: DockTask) -> None:
    """Which device is this?  An unknown volume is recorded and left untouched."""
    if not task.volume.is_dir() or task.volume.is_symlink():
        task.end(SessionState.FAILED, "not a directory (a mounted device volume is expected)")
        return
    task.entries = vol.scan(task.volume)
    task.profile = match_profile(station_profiles(task.app.settings), task.entries)
    if task.profile is None:
        why = "no device profile matches this volume; left untouched (add a profile in config/devices)"
        cut = [e for e in task.entries if e.kind == "unscanned"]
        if cut:  # what could not be listed may be what a profile looks for
            more = f" (and {len(cut) - 1} more)" if len(cut) > 1 else ""
            why = f"{cut[0].rel}: {cut[0].note}{more}; {why}"
        _unrecognised(task, why)
        return
    try:
        task.identity = read_identity(task.profile, task.volume, task.entries)
    except IdentityError as e:
        _unrecognised(task, f"profile {task.profile.name}: {e}; left untouched")
        return
    task.read_at = utcnow()
    ident = task.identity
    task.result.device = {"serial": ident.serial, "officer": ident.officer, "unit": ident.unit,
                          "kind": task.profile.kind, "profile": task.profile.name}
    log.info("%s [%s]: recognised by profile %s (%s); officer %s, unit %s", vol.shown_path(task.volume).rsplit("/", 1)[-1],
             ident.serial, task.profile.name, task.profile.kind, ident.officer or "-", ident.unit or "-")


def _unrecognised(task: DockTask, reason: str) -> None:
    with task.app.catalog.session() as s:
        task.result.session = record_unrecognised(s, station=task.app.station, volume=task.volume, reason=reason,
                                                  actor=task.actor).id
    task.end(SessionState.UNRECOGNISED, reason)
    log.warning("%s: %s", task.volume, reason)


def open_session(task: DockTask) -> None:
    """Hold the device for this process (another one offloading it: try again later), then
    open its dock session (device, officer, unit, clock error; resumes an unfinished one)."""
    try:
        task.held.enter_context(task.spool.lock(task.identity.serial))
        # ... and across stations: the device's lease in the catalog (catalog/leases.py).  With the
        # station's own lock held, its lease left by a killed process of this station is taken back.
        lease = task.held.enter_context(HeldLease(task.app.catalog, task.identity.serial, task.app.station,
                                                  task.station.device_lease_seconds, actor=task.actor,
                                                  own_stale_ok=True))
    except (DeviceBusy, LeaseHeld) as e:
        task.end(SessionState.FAILED, str(e), retry=True)
        return
    stop = task.should_stop
    task.should_stop = lambda: stop() or lease.lost.is_set()  # lease lost: another station has the device
    task.started = time.monotonic()
    with task.app.catalog.session() as s:
        ds = open_dock_session(s, station=task.app.station, volume=task.volume, profile=task.profile,
                               ident=task.identity, read_at=task.read_at, actor=task.actor)
        task.media = items.media_entries(task.entries, task.profile)
        task.session = task.result.session = ds.id


def refuse_and_skip(task: DockTask) -> None:
    """Record, in one transaction, every file that will not be read, and the dock's totals."""
    nbytes = sum(e.size for e in task.media)
    with task.app.catalog.session() as s:
        items.record_refused(s, task)
        items.record_unscanned(s, task)
        items.record_unclaimed(s, task)
        d = s.get(DockSession, task.session)
        d.files_total, d.bytes_total = len(task.media), nbytes
    task.progress("start", {"files": len(task.media), "bytes": nbytes, "session": task.session})


def offload(task: DockTask) -> None:
    """Copy each recording to the spool.  Each copy is stored as soon as it is durable in the
    spool, while the next one is copied; the device may be undocked once this stage is done."""
    floor = task.station.min_free_spool_bytes
    interrupted: str | None = None
    with ThreadPoolExecutor(max_workers=max(1, task.station.upload_workers), thread_name_prefix="upload",
                            initializer=_yield_to_the_copy) as uploads:
        early: list[Future[str | None]] = []
        try:
            task.spool.check_space(0, floor)
            by_rel = {e.rel: e for e in task.entries}
            for e in task.media:
                if task.should_stop():  # the station is shutting down: finish the file in hand, not the device
                    interrupted = "station shutting down; the next dock finishes it"
                    break
                task.spool.check_space(e.size, floor)
                side = find_sidecar(task.profile, e, by_rel)
                item_id = items.copy_one(task, e, read_sidecar(side) if side else None)
                # after an outage, the rest wait for the store stage (one retry per dock, not per file)
                if item_id is not None and not any(f.done() and f.result() for f in early):
                    early.append(uploads.submit(_store_early, task, item_id))
                task.progress("file", {"path": e.rel, "bytes": e.size})
        except DeviceGone as e:
            interrupted = f"device removed during offload: {e}"
        except SpoolFull as e:
            interrupted = f"spool full, offload refused: {e}"
            task.result.retry = True
        t_safe = time.monotonic()
    if interrupted:
        end_interrupted(task, interrupted)
        return
    task.result.safe_to_remove_after_s = round(t_safe - task.started, 3)
    with task.app.catalog.session() as s:
        d = s.get(DockSession, task.session)
        d.offloaded_at, d.state = utcnow(), SessionState.OFFLOADED
    task.progress("offloaded", {"seconds": task.result.safe_to_remove_after_s})


STORE_NICE = 10  # early stores (and the checks they start) run this much nicer than the copy while the device is read


def _yield_to_the_copy() -> None:
    """Issue 14: on 2 cores the device read must keep disk speed while the early stores run,
    so each early-store thread lowers its own CPU priority (Linux: a thread's nice value is
    its own; ffprobe/ffmpeg started from it inherit it).  The copy and its hashing and writing
    threads keep normal priority; these threads end with the offload stage."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + STORE_NICE))
    except (OSError, AttributeError):
        pass  # not Linux, or not allowed: the stores just share the CPU as before


def _store_early(task: DockTask, item_id: int) -> str | None:
    """Store one freshly copied file; an outage is returned (the spool keeps the copy)."""
    try:
        store_item(task.app, item_id, task.profile, task.actor)
        return None
    except StorageUnavailable as e:
        return str(e)
    except StorageIntegrityError as e:
        log.error("integrity error storing item %s: %s", item_id, e)
        return None
    except Exception as e:  # noqa: BLE001 - one file's fault never stops the others; the item stays in the spool
        log.exception("storing item %s failed", item_id)
        note_error(task.app, item_id, f"{type(e).__name__}: {e}")
        return None


def store(task: DockTask) -> None:
    """Store what this device left in the spool (this dock's copies the early uploads did not
    store, and any earlier interrupted dock's), then read back each file's result."""
    _, task.outage = upload_pending(task.app, task.actor, serial=task.identity.serial)
    with task.app.catalog.session() as s:
        items.collect_results(s, task, task.outage)


def wipe(task: DockTask) -> None:
    """Delete from the device each file whose copy is stored and verified - only when asked,
    and never while the store is unreachable."""
    if not task.wipe or task.outage:
        return
    task.result.wiped = wipe_session(task.app, task.session, task.volume, {e.rel: e for e in task.media},
                                     task.actor)
    # A file whose bytes changed on the device after its copy: stored (the copy is evidence),
    # but the dock is not complete - what the device holds now was never captured.
    with task.app.catalog.session() as s:
        items.changed_on_device(s, task, CHANGED)


def finish(task: DockTask) -> None:
    """Close the session: complete (and any unfinished docks it resumed), or incomplete and why."""
    res, counts = task.result, task.result.counts
    complete = not task.outage and counts[ItemStatus.SKIPPED] == 0 and not res.changed_on_device
    message = None if complete else _shortfall(task, counts)
    with task.app.catalog.session() as s:
        d = s.get(DockSession, task.session)
        d.counts = {**counts, "wiped": res.wiped}
        d.ended_at = utcnow()
        if complete:
            d.state = SessionState.COMPLETE
            _close_resumed(s, d)
        else:
            d.state, d.message = SessionState.INCOMPLETE, message
        custody_log.record(s, "session_complete" if complete else "session_incomplete", actor=task.actor,
                           session_id=task.session, detail={"counts": counts, "wiped": res.wiped,
                                                            "message": d.message})
    task.end(SessionState.COMPLETE if complete else SessionState.INCOMPLETE, message)


def _shortfall(task: DockTask, counts: dict[str, int]) -> str:
    if task.outage:
        return task.outage
    if counts[ItemStatus.SKIPPED]:
        return f"{counts[ItemStatus.SKIPPED]} file(s) not stored"
    return f"{task.result.changed_on_device} file(s) changed on the device after their copy; dock again to capture them"


def _close_resumed(s: Session, d: DockSession) -> None:
    """Earlier unfinished docks of this device that this complete dock finished."""
    prev_id = d.resumed_from_id
    while prev_id:
        prev = s.get(DockSession, prev_id)
        if prev is None or prev.state not in RESUMABLE_SESSION_STATES:
            break
        prev.state = SessionState.RESUMED
        prev.message = f"{prev.message or 'incomplete'}; finished by dock session {d.id}"
        prev_id = prev.resumed_from_id


def end_interrupted(task: DockTask, why: str) -> None:
    """The dock stopped short (device pulled, spool full, shutdown, a fault): close the session
    as incomplete, store what reached the spool (the copies are good), wipe nothing."""
    log.error("%s: %s", task.volume, why)
    with task.app.catalog.session() as s:
        d = s.get(DockSession, task.session)
        d.state, d.message, d.ended_at = SessionState.INCOMPLETE, why, utcnow()
        custody_log.record(s, "session_incomplete", actor=task.actor, session_id=task.session, outcome="failed",
                           detail={"reason": why})
    try:
        upload_pending(task.app, task.actor, session_ids=[task.session])
    except Exception as e:  # noqa: BLE001 - the uploader retries later; report, don't lose the summary
        log.warning("upload after interruption deferred: %s", e)
    res = task.result
    with task.app.catalog.session() as s:  # the file in hand when it stopped was not copied: say so
        s.execute(update(OffloadItem).where(OffloadItem.session_id == task.session, OffloadItem.phase == Phase.PENDING,
                                            OffloadItem.status.is_(None), OffloadItem.sha256.is_(None))
                  .values(phase=Phase.DONE, status=ItemStatus.SKIPPED, reason=f"not copied: {why}"))
        items.collect_results(s, task, None)
        seen = {f.path for f in res.files}
        res.files += [FileResult(e.rel, None, e.size, ItemStatus.SKIPPED, f"not copied: {why}")
                      for e in task.media if e.rel not in seen]
        s.get(DockSession, task.session).counts = {**res.counts, "wiped": 0}  # the station page shows what happened
    task.end(SessionState.INCOMPLETE, why)


STAGES: tuple[Stage, ...] = (recognise, open_session, refuse_and_skip, offload, store, wipe, finish)
