"""One docked volume, end to end: recognise -> session -> offload to spool -> store ->
catalog -> (wipe).  The daemon and `custody ingest` both call `ingest_volume`.

Stages keep explicit state in `offload_items` (pending -> copied -> stored -> wiped), so
a SIGKILL, a pulled cable or a storage outage resumes where it stopped and never drops
or duplicates a recording.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from catalog.app import App
from core.errors import DeviceGone, RefusedEntry, SpoolFull, StorageIntegrityError, StorageUnavailable
from catalog import custody_log
from catalog.models import Device, DockSession, Media, OffloadItem, Sighting, utcnow
from ingest import volume as vol
from ingest.offload import FileChanged, ReadFailed, copy_and_hash, free_bytes
from ingest.profiles import Identity, IdentityError, Profile, read_identity, recognise, recognising, station_profiles
from ingest.session import open_session, record_unrecognised
from ingest.sidecar import find_sidecar, read_sidecar
from ingest.upload import note_error, spool_dir, store_item, upload_pending
from ingest.wipe import wipe_session

log = logging.getLogger("custody.ingest")
STATUSES = ("stored", "duplicate", "flagged", "refused", "skipped")
Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class FileResult:
    path: str
    sha256: str | None
    size: int | None
    status: str
    reason: str | None = None
    media_id: int | None = None


@dataclass
class IngestResult:
    volume: str
    state: str  # complete|incomplete|unrecognised|failed|offloaded
    message: str | None = None
    session: int | None = None
    device: dict[str, Any] | None = None
    files: list[FileResult] = field(default_factory=list)
    safe_to_remove_after_s: float | None = None
    retry: bool = False  # worth trying again while docked (device busy elsewhere, spool full)
    wiped: int = 0
    changed_on_device: int = 0  # stored files whose device bytes changed after the copy (not wiped)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(f.status for f in self.files)
        return {s: c.get(s, 0) for s in STATUSES}

    @property
    def ok(self) -> bool:
        return self.state in ("complete",) and not self.counts["skipped"]

    def to_json(self) -> dict[str, Any]:
        return {
            "volume": self.volume, "state": self.state, "message": self.message, "session": self.session,
            "device": self.device, "counts": self.counts, "wiped": self.wiped,
            "safe_to_remove_after_seconds": self.safe_to_remove_after_s,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size, "status": f.status, "reason": f.reason}
                      for f in self.files],
        }


class DeviceLock:
    """One offload per device at a time on this station (daemon and CLI alike)."""

    def __init__(self, spool: Path, serial: str) -> None:
        d = spool / "locks"
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / (hashlib.sha256(serial.encode()).hexdigest()[:32] + ".lock")
        self.fd = -1

    def __enter__(self) -> "DeviceLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self.fd)
            raise DeviceBusy("this device is already being offloaded by another process") from e
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class DeviceBusy(Exception):
    pass


def _noop(event: str, data: dict[str, Any]) -> None:
    pass


def ingest_volume(app: App, volume: Path, *, actor: str | None = None, wipe: bool | None = None,
                  progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> IngestResult:
    actor = actor or f"station:{app.station}"
    progress = progress or _noop
    volume = Path(os.path.abspath(volume))
    res = IngestResult(volume=vol.shown_path(volume), state="failed")
    if not volume.is_dir() or volume.is_symlink():
        res.message = "not a directory (a mounted device volume is expected)"
        return res
    entries = vol.scan(volume)
    profile = recognise(station_profiles(app.settings), entries)
    if profile is None:
        why = "no device profile matches this volume; left untouched (add a profile in config/devices)"
        cut = [e for e in entries if e.kind == "unscanned"]
        if cut:  # what could not be listed may be what a profile looks for
            why = f"{cut[0].rel}: {cut[0].note}" + (f" (and {len(cut) - 1} more)" if len(cut) > 1 else "") + \
                f"; {why}"
        return _unrecognised(app, volume, res, actor, why)
    try:
        ident = read_identity(profile, volume, entries)
    except IdentityError as e:
        return _unrecognised(app, volume, res, actor, f"profile {profile.name}: {e}; left untouched")
    read_at = utcnow()
    res.device = {"serial": ident.serial, "officer": ident.officer, "unit": ident.unit, "kind": profile.kind,
                  "profile": profile.name}
    spool = spool_dir(app)
    try:
        with DeviceLock(spool, ident.serial):
            return _run(app, volume, entries, profile, ident, read_at, res, actor, wipe, progress,
                        should_stop or (lambda: False))
    except DeviceBusy as e:
        res.state, res.message, res.retry = "failed", str(e), True
        return res


def _unrecognised(app: App, volume: Path, res: IngestResult, actor: str, reason: str) -> IngestResult:
    with app.catalog.session() as s:
        ds = record_unrecognised(s, station=app.station, volume=volume, reason=reason, actor=actor)
        res.session = ds.id
    res.state, res.message = "unrecognised", reason
    log.warning("%s: %s", volume, reason)
    return res


def _run(app: App, volume: Path, entries: list[vol.Entry], profile: Profile, ident: Identity, read_at: Any,
         res: IngestResult, actor: str, wipe: bool | None, progress: Progress,
         should_stop: Callable[[], bool]) -> IngestResult:
    st = app.settings.station
    wipe = st.wipe_after_verify if wipe is None else wipe
    t0 = time.monotonic()
    with app.catalog.session() as s:
        ds = open_session(s, station=app.station, volume=volume, profile=profile, ident=ident, read_at=read_at,
                          actor=actor)
        sid = ds.id
    res.session = sid
    try:
        return _offload_and_store(app, volume, entries, profile, ident, res, actor, wipe, progress, sid, t0,
                                  should_stop)
    except Exception as e:  # noqa: BLE001 - one bad volume never takes the daemon down or hangs a session
        log.exception("%s: offload failed", volume)
        return _finish_interrupted(app, sid, volume, _media_entries(entries, profile), res,
                                   f"offload failed: {type(e).__name__}: {e}", actor)


def _media_entries(entries: list[vol.Entry], profile: Profile) -> list[vol.Entry]:
    return [e for e in entries if e.kind == "file" and profile.is_media(e.rel) and not vol.is_appledouble(e)]


def _offload_and_store(app: App, volume: Path, entries: list[vol.Entry], profile: Profile, ident: Identity,
                       res: IngestResult, actor: str, wipe: bool, progress: Progress, sid: int,
                       t0: float, should_stop: Callable[[], bool]) -> IngestResult:
    st = app.settings.station
    media = _media_entries(entries, profile)
    refused = [e for e in entries if e.kind in REFUSED_KINDS]
    _record_refused(app, sid, refused, actor, res)
    _record_unscanned(app, sid, [e for e in entries if e.kind == "unscanned"], actor, res)
    _record_unclaimed(app, sid, profile, entries, actor)
    progress("start", {"files": len(media), "bytes": sum(e.size for e in media), "session": sid})
    _set_totals(app, sid, len(media), sum(e.size for e in media))
    interrupted: str | None = None
    # Each file is uploaded as soon as it is durable in the spool, while the next one is copied.
    with ThreadPoolExecutor(max_workers=max(1, st.upload_workers), thread_name_prefix="upload") as uploads:
        early: list[Future[str | None]] = []
        try:
            _check_spool_space(app, 0)
            by_rel = {e.rel: e for e in entries}
            for e in media:
                if should_stop():  # the station is shutting down: finish the file in hand, not the device
                    interrupted = "station shutting down; the next dock finishes it"
                    break
                _check_spool_space(app, e.size)
                side = find_sidecar(profile, e, by_rel)
                item_id = _offload_one(app, volume, sid, ident.serial, e, actor, res, trust_known=not wipe,
                                       sidecar=read_sidecar(side) if side else None)
                if item_id is not None and not any(f.done() and f.result() for f in early):
                    early.append(uploads.submit(_upload_early, app, item_id, profile, actor))
                progress("file", {"path": e.rel, "bytes": e.size})
                _bump(app, sid, e.size)
        except DeviceGone as e:
            interrupted = f"device removed during offload: {e}"
        except SpoolFull as e:
            interrupted = f"spool full, offload refused: {e}"
            res.retry = True
        t_safe = time.monotonic()
    if interrupted:
        return _finish_interrupted(app, sid, volume, media, res, interrupted, actor)
    res.safe_to_remove_after_s = round(t_safe - t0, 3)
    with app.catalog.session() as s:
        d = s.get(DockSession, sid)
        d.offloaded_at, d.state = utcnow(), "offloaded"
    progress("offloaded", {"seconds": res.safe_to_remove_after_s})
    # Upload what this device left in the spool (this dock and any earlier interrupted one).
    _, outage = upload_pending(app, actor, serial=ident.serial)
    _collect_upload_results(app, sid, res, outage)
    if wipe and not outage:
        res.wiped = wipe_session(app, sid, volume, {e.rel: e for e in media}, actor)
        _note_wipe_refusals(app, sid, res)
    return _finish(app, sid, res, actor, outage)


def _note_wipe_refusals(app: App, sid: int, res: IngestResult) -> None:
    """A file whose bytes changed on the device after its copy: stored (the copy is evidence),
    but the dock is not complete - what the device holds now was never captured."""
    from ingest.wipe import CHANGED

    with app.catalog.session() as s:
        changed = set(s.execute(select(OffloadItem.device_path).where(OffloadItem.session_id == sid,
                                                                      OffloadItem.reason == CHANGED)).scalars())
    for f in res.files:
        if f.path in changed:
            f.reason = CHANGED
    res.changed_on_device = len(changed)


def _upload_early(app: App, item_id: int, profile: Profile, actor: str) -> str | None:
    """Store one freshly copied file; an outage is returned (the spool keeps the copy)."""
    try:
        store_item(app, item_id, profile, actor)
        return None
    except StorageUnavailable as e:
        return str(e)
    except StorageIntegrityError as e:
        log.error("integrity error storing item %s: %s", item_id, e)
        return None
    except Exception as e:  # noqa: BLE001 - one file's fault never stops the others; the item stays in the spool
        log.exception("storing item %s failed", item_id)
        note_error(app, item_id, f"{type(e).__name__}: {e}")
        return None


REFUSED_KINDS = {
    "symlink": "symbolic link: never followed or read",
    "special": "device/special file: never read",
}


def _record_refused(app: App, sid: int, refused: list[vol.Entry], actor: str, res: IngestResult) -> None:
    if not refused:
        return
    with app.catalog.session() as s:
        for e in refused:
            why = REFUSED_KINDS[e.kind]
            s.add(OffloadItem(session_id=sid, device_path=e.rel, size=None, phase="done", status="refused", reason=why))
            custody_log.record(s, "refused", actor=actor, session_id=sid, outcome="refused",
                               subject=f"device_path:{e.rel}", detail={"reason": why, "kind": e.kind})
            res.files.append(FileResult(e.rel, None, None, "refused", why))


def _record_unscanned(app: App, sid: int, unscanned: list[vol.Entry], actor: str, res: IngestResult) -> None:
    """Folders the scan could not list may hold recordings: the dock is not complete."""
    if not unscanned:
        return
    with app.catalog.session() as s:
        for e in unscanned:
            s.add(OffloadItem(session_id=sid, device_path=e.rel, size=None, phase="done", status="skipped",
                              reason=e.note))
            custody_log.record(s, "skipped", actor=actor, session_id=sid, outcome="failed",
                               subject=f"device_path:{e.rel}", detail={"reason": e.note})


def _record_unclaimed(app: App, sid: int, profile: Profile, entries: list[vol.Entry], actor: str) -> None:
    """The volume also looks like another device kind: files that profile would take as
    recordings but this one does not are reported (the dock is incomplete), never ignored."""
    others = [p for p in recognising(station_profiles(app.settings), entries) if p.name != profile.name]
    if not others:
        return
    with app.catalog.session() as s:
        for e in entries:
            if e.kind != "file" or profile.is_media(e.rel) or vol.is_appledouble(e):
                continue
            claimed = [p.name for p in others if p.is_media(e.rel)]
            if claimed:
                why = (f"recording of a {claimed[0]} device on a volume recognised as {profile.name}; "
                       "not offloaded (check the device profiles)")
                s.add(OffloadItem(session_id=sid, device_path=e.rel, size=e.size, phase="done", status="skipped",
                                  reason=why))
                custody_log.record(s, "skipped", actor=actor, session_id=sid, outcome="failed",
                                   subject=f"device_path:{e.rel}", detail={"reason": why})


def _check_spool_space(app: App, need: int) -> None:
    floor = app.settings.station.min_free_spool_bytes
    free = free_bytes(spool_dir(app))
    if free - need < floor:
        raise SpoolFull(f"spool has {free} bytes free, the next file needs {need} plus a floor of {floor}; "
                        "nothing was deleted to make room")


def _known(app: App, serial: str, e: vol.Entry) -> OffloadItem | None:
    """The same file (device, path, size, mtime) already stored from an earlier dock."""
    with app.catalog.session() as s:
        return s.execute(
            select(OffloadItem).join(DockSession, DockSession.id == OffloadItem.session_id)
            .join(Device, Device.id == DockSession.device_id)
            .where(Device.serial == serial, OffloadItem.device_path == e.rel, OffloadItem.size == e.size,
                   OffloadItem.mtime_ns == e.mtime_ns, OffloadItem.phase.in_(("stored", "wiped", "copied")),
                   OffloadItem.sha256.is_not(None))
            .order_by(OffloadItem.id.desc())
        ).scalars().first()


def _offload_one(app: App, volume: Path, sid: int, serial: str, e: vol.Entry, actor: str, res: IngestResult,
                 trust_known: bool, sidecar: dict | None = None) -> int | None:
    """Copy one file to the spool.  Returns the item id when a copy now waits to be stored."""
    st = app.settings.station
    known = _known(app, serial, e) if trust_known else None
    if known is not None:
        _carry_known(app, sid, e, known, actor)
        return None
    with app.catalog.session() as s:
        item = OffloadItem(session_id=sid, device_path=e.rel, size=e.size, mtime_ns=e.mtime_ns, inode=e.inode,
                           sidecar=sidecar)
        s.add(item)
        s.flush()
        item_id = item.id
    entry = e
    reason = None
    for attempt in range(st.file_busy_retries + 1):
        age = time.time() - entry.mtime_ns / 1e9
        if age < st.file_stable_seconds:
            # Recently modified - or stamped in the future by a device clock that runs ahead.
            # Stable means: unchanged over a wait, whatever the clocks say.
            time.sleep(st.file_stable_seconds if age < 0 else st.file_stable_seconds - age)
            before, entry = entry, _restat(entry)
            if entry is None:
                reason = "file vanished before it could be copied"
                break
            young = (entry.size, entry.mtime_ns, entry.inode) != (before.size, before.mtime_ns, before.inode)
            if young and attempt < st.file_busy_retries:
                continue
            if young:
                reason = (f"still being written (modified within the last {st.file_stable_seconds:g}s after "
                          f"{st.file_busy_retries} waits); left on the device unwiped")
                break
        try:
            cr = copy_and_hash(entry, volume, spool_dir(app), st.copy_chunk_bytes)
        except FileChanged as ex:
            reason = f"still being written ({ex}); left on the device unwiped"
            entry = _restat(entry)
            if entry is None:
                if not volume.is_dir():
                    raise DeviceGone("device volume disappeared") from ex
                reason = "file vanished during copy; nothing stored"
                break
            continue
        except RefusedEntry as ex:
            _close_item(app, item_id, "refused", str(ex), actor)
            res.files.append(FileResult(e.rel, None, None, "refused", str(ex)))
            return None
        except ReadFailed as ex:
            reason = f"{ex}; left on the device unwiped"
            break
        with app.catalog.session() as s:
            it = s.get(OffloadItem, item_id)
            it.phase, it.sha256, it.size, it.mtime_ns, it.spool_name = "copied", cr.sha256, cr.size, cr.mtime_ns, cr.spool_name
            custody_log.record(s, "copied", actor=actor, session_id=sid, subject=f"sha256:{cr.sha256}",
                               detail={"device_path": e.rel, "size": cr.size})
        return item_id
    _close_item(app, item_id, "skipped", reason or "file kept changing; left on the device unwiped", actor)
    return None


def _restat(e: vol.Entry) -> vol.Entry | None:
    try:
        st = os.lstat(e.abspath)
    except OSError:
        return None
    return vol.Entry(e.rel, e.abspath, e.kind, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def _carry_known(app: App, sid: int, e: vol.Entry, known: OffloadItem, actor: str) -> None:
    with app.catalog.session() as s:
        if known.phase == "copied":
            # Storage was down last time: the spool copy still waits; this dock sees it again.
            s.add(OffloadItem(session_id=sid, device_path=e.rel, size=e.size, mtime_ns=e.mtime_ns, inode=e.inode,
                              sha256=known.sha256, spool_name=known.spool_name, phase="done", status="duplicate",
                              reason=f"copy from dock session {known.session_id} still waits in the spool"))
            return
        reason = f"already stored from dock session {known.session_id} (same path, size and time); not re-read"
        s.add(OffloadItem(session_id=sid, device_path=e.rel, size=e.size, mtime_ns=e.mtime_ns, inode=e.inode,
                          sha256=known.sha256, phase="stored", status="duplicate", reason=reason,
                          media_id=known.media_id))
        s.add(Sighting(media_id=known.media_id, session_id=sid, device_path=e.rel))
        custody_log.record(s, "duplicate", actor=actor, media_id=known.media_id, session_id=sid,
                           subject=f"sha256:{known.sha256}", detail={"device_path": e.rel, "reason": reason})


def _close_item(app: App, item_id: int, status: str, reason: str, actor: str) -> None:
    with app.catalog.session() as s:
        it = s.get(OffloadItem, item_id)
        it.phase, it.status, it.reason = "done", status, reason
        custody_log.record(s, status if status in ("refused", "skipped") else "skipped", actor=actor,
                           session_id=it.session_id, outcome="refused" if status == "refused" else "failed",
                           subject=f"device_path:{it.device_path}", detail={"reason": reason})


def _set_totals(app: App, sid: int, files: int, nbytes: int) -> None:
    with app.catalog.session() as s:
        d = s.get(DockSession, sid)
        d.files_total, d.bytes_total = files, nbytes


def _bump(app: App, sid: int, nbytes: int) -> None:
    with app.catalog.session() as s:
        d = s.get(DockSession, sid)
        d.files_done += 1
        d.bytes_done += nbytes
        d.heartbeat_at = utcnow()


def _collect_upload_results(app: App, sid: int, res: IngestResult, outage: str | None) -> None:
    with app.catalog.session() as s:
        items = s.execute(select(OffloadItem).where(OffloadItem.session_id == sid, OffloadItem.status.is_distinct_from("refused"))
                          .order_by(OffloadItem.id)).scalars().all()
        for it in items:
            if it.phase == "copied":
                why = f"copied to the station spool; upload pending ({outage or 'in progress'}); not wiped"
                res.files.append(FileResult(it.device_path, it.sha256, it.size, "skipped", why))
            elif it.phase == "pending":
                res.files.append(FileResult(it.device_path, it.sha256, it.size, "skipped", it.reason or "not copied"))
            elif it.status == "duplicate" and it.media_id is None and it.sha256:
                _settle_spooled_duplicate(s, it)
                status = "duplicate" if it.media_id is not None else "skipped"
                res.files.append(FileResult(it.device_path, it.sha256, it.size, status, it.reason, it.media_id))
            else:
                res.files.append(FileResult(it.device_path, it.sha256, it.size, it.status or "skipped", it.reason,
                                            it.media_id))


def _settle_spooled_duplicate(s: Any, it: OffloadItem) -> None:
    """A file whose earlier copy waited in the spool: say what became of that copy now."""
    m = s.execute(select(Media).where(Media.sha256 == it.sha256)).scalar_one_or_none()
    if m is not None and m.status == "stored":
        it.media_id, it.phase = m.id, "stored"
        s.add(Sighting(media_id=m.id, session_id=it.session_id, device_path=it.device_path))
        it.reason = f"stored from the copy an earlier dock left in the station spool (media {m.id})"
    elif s.execute(select(OffloadItem.id).where(OffloadItem.sha256 == it.sha256, OffloadItem.phase == "pending",
                                                OffloadItem.reason.like("spool copy damaged%")).limit(1)).first():
        it.reason = ("the copy an earlier dock left in the station spool was damaged and set aside; not stored, "
                     "not wiped: dock again to copy it afresh from the device")
    else:
        it.reason = "the copy an earlier dock left in the station spool is not stored yet (upload pending); not wiped"


def _finish(app: App, sid: int, res: IngestResult, actor: str, outage: str | None) -> IngestResult:
    counts = res.counts
    complete = not outage and counts["skipped"] == 0 and not res.changed_on_device
    with app.catalog.session() as s:
        d = s.get(DockSession, sid)
        d.counts = {**counts, "wiped": res.wiped}
        d.ended_at = utcnow()
        if complete:
            d.state = "complete"
            if d.resumed_from_id:
                _close_resumed(s, d)
        else:
            d.state = "incomplete"
            d.message = _shortfall(outage, counts, res)
        custody_log.record(s, "session_complete" if complete else "session_incomplete", actor=actor, session_id=sid,
                           detail={"counts": counts, "wiped": res.wiped, "message": d.message})
    res.state = "complete" if complete else "incomplete"
    res.message = None if complete else _shortfall(outage, counts, res)
    return res


def _shortfall(outage: str | None, counts: dict[str, int], res: IngestResult) -> str:
    if outage:
        return outage
    if counts["skipped"]:
        return f"{counts['skipped']} file(s) not stored"
    return f"{res.changed_on_device} file(s) changed on the device after their copy; dock again to capture them"


def _close_resumed(s: Any, d: DockSession) -> None:
    prev_id = d.resumed_from_id
    while prev_id:
        prev = s.get(DockSession, prev_id)
        if prev is None or prev.state not in ("incomplete", "offloading", "offloaded"):
            break
        prev.state = "resumed"
        prev.message = f"{prev.message or 'incomplete'}; finished by dock session {d.id}"
        prev_id = prev.resumed_from_id


def _finish_interrupted(app: App, sid: int, volume: Path, media: list[vol.Entry], res: IngestResult, why: str,
                        actor: str) -> IngestResult:
    log.error("%s: %s", volume, why)
    with app.catalog.session() as s:
        d = s.get(DockSession, sid)
        d.state, d.message, d.ended_at = "incomplete", why, utcnow()
        custody_log.record(s, "session_incomplete", actor=actor, session_id=sid, outcome="failed",
                           detail={"reason": why})
    # Whatever reached the spool is still stored (the copies are good); nothing is wiped.
    try:
        upload_pending(app, actor, session_ids=[sid])
    except Exception as e:  # noqa: BLE001 - the uploader retries later; report, don't lose the summary
        log.warning("upload after interruption deferred: %s", e)
    with app.catalog.session() as s:  # the file in hand when it stopped was not copied: say so
        s.execute(update(OffloadItem).where(OffloadItem.session_id == sid, OffloadItem.phase == "pending",
                                            OffloadItem.status.is_(None), OffloadItem.sha256.is_(None))
                  .values(phase="done", status="skipped", reason=f"not copied: {why}"))
    _collect_upload_results(app, sid, res, None)
    seen = {f.path for f in res.files}
    for e in media:
        if e.rel not in seen:
            res.files.append(FileResult(e.rel, None, e.size, "skipped", f"not copied: {why}"))
    res.state, res.message = "incomplete", why
    with app.catalog.session() as s:
        s.get(DockSession, sid).counts = {**res.counts, "wiped": 0}  # the station page shows what happened
    return res
