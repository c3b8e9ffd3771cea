"""Spool -> object store -> catalog.  Idempotent: a crash anywhere re-runs safely.

Order matters (nothing lost): the object is stored and its checksum confirmed by the
store, then one catalog transaction records the media row, its sighting, the index and
retain jobs and the custody events together.  Only after that may the device copy be wiped.

The unit of work is an `offload_items` row in phase `copied` whose bytes wait in the station
spool (`Spool.path(sha256)`): `store_item` takes one, `upload_pending` drains them all.  A file
that reaches the spool by another route than a dock is stored the same way: `add_copied_item`
records it, then `store_item` (or the daemon's uploader) stores it.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.app import App
from core.errors import SourceMismatch, StorageIntegrityError, StorageUnavailable
from catalog import custody_log, jobs, objrecord
from catalog.models import Device, DockSession, Job, Media, OffloadItem, Officer, Sighting, utcnow
from ingest import quickcheck
from ingest.profiles import Profile, plausible_time, station_profiles
from ingest.spool import Spool
from ingest.states import ACTIVE_SESSION_STATES, ItemStatus, Phase, SessionState
from storage.base import media_key
from storage.fixity import sha256_file

log = logging.getLogger("custody.upload")
_claimed: set[int] = set()
_claim_lock = threading.Lock()


@dataclass
class Outcome:
    status: ItemStatus | str  # stored|duplicate|flagged|skipped
    reason: str | None
    media_id: int | None = None


def _claim(item_id: int) -> bool:
    with _claim_lock:
        if item_id in _claimed:
            return False
        _claimed.add(item_id)
        return True


def _release(item_id: int) -> None:
    with _claim_lock:
        _claimed.discard(item_id)


def initial_times(item: OffloadItem, ds: DockSession, profile: Profile | None) -> dict:
    """First estimate of when it was recorded (the indexer refines it from the container/EXIF):
    the file-name time as the device clock read it, corrected by the clock error measured
    at this dock; else the file's modification time."""
    offset = ds.clock_offset_seconds
    info = profile.parse_name(item.device_path) if profile else None
    out: dict = {"clock_offset_seconds": offset, "clock_offset_source": ds.clock_offset_source}
    if info and info.start is not None:
        out.update(device_start_text=info.start_text, device_start=info.start, time_source="filename",
                   recorded_start=_corrected(info.start, offset))
    elif item.mtime_ns:
        mt = _from_ns(item.mtime_ns)
        if mt is not None:
            out.update(device_start_text=mt.isoformat(), device_start=mt, time_source="mtime",
                       recorded_start=_corrected(mt, offset))
    if info:
        out["important"] = info.important
        out["name_officer"] = info.officer
    return out


def _corrected(device_time: datetime, offset: float | None) -> datetime | None:
    """Device time minus the measured clock error; None when that is no time at all (the
    indexer then works the time out from the container, EXIF or file time)."""
    try:
        return plausible_time(device_time - timedelta(seconds=offset or 0))
    except OverflowError:
        return None


def _from_ns(ns: int) -> datetime | None:
    try:
        return plausible_time(datetime.fromtimestamp(ns / 1e9, tz=timezone.utc))
    except (OverflowError, OSError, ValueError):
        return None


def add_copied_item(s: Session, *, session_id: int, device_path: str, sha256: str, size: int,
                    mtime_ns: int | None = None, inode: int | None = None, sidecar: dict | None = None) -> OffloadItem:
    """Record a file whose bytes are complete in this station's spool (`Spool.path(sha256)`) as
    waiting to be stored.  Store it with `store_item(app, item.id, profile, actor)` after the
    commit, or leave it to the daemon's uploader (`upload_pending`) once its session is no longer
    offloading/offloaded.  `session_id` is the dock session it arrived in; `device_path` the name
    it had on the device."""
    item = OffloadItem(session_id=session_id, device_path=device_path, size=size, mtime_ns=mtime_ns, inode=inode,
                       sidecar=sidecar, sha256=sha256, spool_name=sha256, phase=Phase.COPIED)
    s.add(item)
    s.flush()
    return item


def store_item(app: App, item_id: int, profile: Profile | None, actor: str) -> Outcome:
    """Store one copied item: object store -> confirmed checksum -> one catalog transaction
    (media row, sighting, index and retain jobs, custody events).  Raises StorageUnavailable
    (retry later; the spool keeps the copy) and StorageIntegrityError (wrong bytes in the store)."""
    if not _claim(item_id):
        return Outcome(ItemStatus.SKIPPED, "being uploaded by another worker")
    try:
        return _store_item(app, item_id, profile, actor)
    finally:
        _release(item_id)


def _store_item(app: App, item_id: int, profile: Profile | None, actor: str) -> Outcome:
    with app.catalog.session() as s:
        item = s.get(OffloadItem, item_id)
        if item is None or item.phase != Phase.COPIED:
            return Outcome(item.status if item else ItemStatus.SKIPPED, item.reason if item else "gone",
                           item.media_id if item else None)
        ds = s.get(DockSession, item.session_id)
        sha, size = item.sha256, item.size or 0
        existing = s.execute(select(Media).where(Media.sha256 == sha)).scalar_one_or_none()
    spool = Spool.of(app.settings)
    src = spool.path(item.spool_name or sha)
    key = media_key(sha)
    kind = profile.media_kind(item.device_path) if profile else "other"
    if existing is not None and existing.status == "stored":
        restored = _confirm_or_restore(app, key, src, sha, size)
        with app.catalog.session() as s:
            return _record_duplicate(app, s, item_id, existing.id, actor, restored)
    if not src.exists():
        with app.catalog.session() as s:
            it = s.get(OffloadItem, item_id)
            it.phase, it.status = Phase.PENDING, None
            it.reason = "spool copy missing; will be copied again from the device"
        return Outcome(ItemStatus.SKIPPED, "spool copy missing; will be copied again at the next dock")
    # The playability check (ffprobe) reads the spool copy while the upload streams it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quickcheck") as checker:
        pending_check = checker.submit(quickcheck.check, src, kind, size)
        try:
            # proven: the offload hashed this copy as it wrote and fsynced it; the local store
            # links it into place instead of writing the bytes a second time (issue 14).
            obj = app.store.put_file(key, src, sha, size, metadata={"station": app.station},
                                     content_type=_content_type(kind, item.device_path), proven=True)
        except StorageIntegrityError as e:
            # The store refused the bytes: if the spool copy itself is damaged, copy again from
            # the device (which still has the original: nothing is wiped before this succeeds).
            if isinstance(e, SourceMismatch) or sha256_file(src) != sha:
                return _spool_damaged(app, spool, item_id, src, str(e), actor)
            raise
        chk = pending_check.result()
    times = initial_times(item, ds, profile)
    out = _record_stored(app, item_id, obj.checksum, kind, chk, times, actor)
    if out.status in (ItemStatus.STORED, ItemStatus.FLAGGED) and out.media_id is not None:
        objrecord.write_for_media(app, out.media_id)  # what the dock knew, beside the object (issue 17)
    return out


def _spool_damaged(app: App, spool: Spool, item_id: int, src: Path, why: str, actor: str) -> Outcome:
    """Set the damaged copy aside (kept for diagnosis, never uploaded) and send the item back
    to be copied from the device at its next dock."""
    kept = spool.set_aside(src)
    reason = "spool copy damaged after the copy (it no longer hashes to the device's SHA-256); " \
             "not stored, not wiped; will be copied again from the device at the next dock"
    with app.catalog.session() as s:
        it = s.get(OffloadItem, item_id)
        it.phase, it.status, it.reason, it.last_error = Phase.PENDING, None, reason, why[:500]
        custody_log.record(s, "spool_damaged", actor=actor, session_id=it.session_id, outcome="failed",
                           subject=f"sha256:{it.sha256}",
                           detail={"device_path": it.device_path, "error": why[:500], "kept_as": kept.name})
    log.error("item %s: %s (%s)", item_id, reason, why)
    return Outcome(ItemStatus.SKIPPED, reason)


def _confirm_or_restore(app: App, key: str, src: Path, sha: str, size: int) -> str | None:
    """The earlier copy must really be in the store.  If it is gone (a store that lost data)
    and this dock brought the same bytes, put them back: the store heals from the spool.
    Returns why it was restored (None: it was there)."""
    try:
        app.store.confirm(key, sha, size)
        return None
    except StorageIntegrityError as e:
        if not src.exists() or app.store.head(key) is not None:
            raise  # present but wrong bytes: that is for `custody verify`, never overwritten here
        why = str(e)
    app.store.put_file(key, src, sha, size, metadata={"station": app.station})
    return why


def _content_type(kind: str, name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower()
    return {"mp4": "video/mp4", "mov": "video/quicktime", "jpg": "image/jpeg", "jpeg": "image/jpeg",
            "wav": "audio/wav", "aac": "audio/aac", "m4a": "audio/mp4"}.get(ext, "application/octet-stream")


def _record_duplicate(app: App, s: Session, item_id: int, media_id: int, actor: str,
                      restored: str | None = None) -> Outcome:
    item = s.get(OffloadItem, item_id)
    media = s.get(Media, media_id)
    if restored is not None:
        custody_log.record(s, "restored", actor=actor, media_id=media_id, session_id=item.session_id,
                           subject=f"sha256:{media.sha256}",
                           detail={"key": media_key(media.sha256), "reason": restored, "from": "station spool"})
        log.warning("media %s: object %s was missing from the store; restored from this dock's copy", media_id,
                    media_key(media.sha256))
    item.phase, item.status, item.media_id = Phase.STORED, ItemStatus.DUPLICATE, media_id
    item.reason = f"same bytes already stored as media {media_id}"
    s.add(Sighting(media_id=media_id, session_id=item.session_id, device_path=item.device_path))
    custody_log.record(s, "duplicate", actor=actor, media_id=media_id, session_id=item.session_id,
                       subject=f"sha256:{media.sha256}", detail={"device_path": item.device_path})
    return Outcome(ItemStatus.DUPLICATE, item.reason, media_id)


def _record_stored(app: App, item_id: int, checksum: str, kind: str, chk: quickcheck.Check, times: dict,
                   actor: str) -> Outcome:
    try:
        with app.catalog.session() as s:
            item = s.get(OffloadItem, item_id)
            flags, reasons = [], {}
            if not chk.ok:
                flag = "empty" if (item.size or 0) == 0 else "unplayable"
                flags, reasons = [flag], {flag: chk.reason}
            media = _new_media(s, item, checksum, kind, flags, reasons, times)
            s.add(Sighting(media_id=media.id, session_id=item.session_id, device_path=item.device_path))
            s.add(Job(kind="index", media_id=media.id))
            # Its first retention decision (retention's worker locks the object in the store; ingest
            # never imports retention).  In this transaction: a stored recording always has one.
            jobs.enqueue(s, media.id, "retain")
            item.phase, item.media_id = Phase.STORED, media.id
            item.status = ItemStatus.FLAGGED if flags else ItemStatus.STORED
            item.reason = chk.reason if flags else None
            subj = f"sha256:{item.sha256}"
            custody_log.record(s, "stored", actor=actor, media_id=media.id, session_id=item.session_id, subject=subj,
                               detail={"key": media.storage_key, "size": media.size, "device_path": item.device_path,
                                       "store": app.store.url})
            custody_log.record(s, "verified", actor=actor, media_id=media.id, session_id=item.session_id,
                               subject=subj, detail={"store_checksum": checksum})
            if flags:
                custody_log.record(s, "flagged", actor=actor, media_id=media.id, session_id=item.session_id,
                                   subject=subj, detail={"flags": flags, "reason": chk.reason})
            return Outcome(item.status, item.reason, media.id)
    except IntegrityError:
        # Another station/worker recorded the same bytes first: this sighting is a duplicate.
        with app.catalog.session() as s:
            sha = s.get(OffloadItem, item_id).sha256
            mid = s.execute(select(Media.id).where(Media.sha256 == sha)).scalar_one()
            return _record_duplicate(app, s, item_id, mid, actor)


def _new_media(s: Session, item: OffloadItem, checksum: str, kind: str, flags: list[str], reasons: dict,
               times: dict) -> Media:
    """The media row of a newly stored recording (flushed: it has its id)."""
    ds = s.get(DockSession, item.session_id)
    dev = s.get(Device, ds.device_id) if ds.device_id else None
    badge = times.pop("name_officer", None) or ds.officer_badge
    officer = s.execute(select(Officer).where(Officer.badge == badge)).scalar_one_or_none() if badge else None
    marks = ["important"] if times.get("important") else []  # the recorder's own mark
    now = utcnow()
    media = Media(
        sha256=item.sha256, size=item.size or 0, kind=kind, storage_key=media_key(item.sha256),
        storage_checksum=checksum, status="stored", device_id=dev.id if dev else None,
        officer_id=officer.id if officer else None, officer_badge=badge, unit_code=ds.unit_code,
        first_session_id=ds.id, original_path=item.device_path,
        original_name=item.device_path.rsplit("/", 1)[-1],
        original_mtime=_from_ns(item.mtime_ns) if item.mtime_ns else None,
        meta={"sidecar": item.sidecar["content"], "sidecar_file": item.sidecar["file"]} if item.sidecar else {},
        flags=flags + marks, flag_reasons=reasons, docked_at=ds.started_at, stored_at=now, verified_at=now,
        **times)
    s.add(media)
    s.flush()
    return media


def pending_items(app: App, session_ids: list[int] | None = None,
                  serial: str | None = None) -> list[tuple[int, str | None]]:
    """Items copied to this station's spool but not yet stored: (item id, profile name), for
    the given sessions or every session of one device (`serial`).  Without either, only work
    left behind (sessions no longer being offloaded) is returned: a live offload uploads its
    own files and reports on them."""
    with app.catalog.session() as s:
        q = (select(OffloadItem.id, DockSession.profile).join(DockSession, DockSession.id == OffloadItem.session_id)
             .where(OffloadItem.phase == Phase.COPIED, DockSession.station == app.station).order_by(OffloadItem.id))
        if session_ids is not None:
            q = q.where(OffloadItem.session_id.in_(session_ids))
        elif serial is not None:
            q = q.join(Device, Device.id == DockSession.device_id).where(Device.serial == serial)
        else:
            q = q.where(DockSession.state.not_in(ACTIVE_SESSION_STATES))
        return [(r[0], r[1]) for r in s.execute(q).all()]


def upload_pending(app: App, actor: str, session_ids: list[int] | None = None,
                   serial: str | None = None) -> tuple[int, str | None]:
    """Drain the spool.  Returns (items stored, reason the store is unavailable or None)."""
    profiles = {p.name: p for p in station_profiles(app.settings)}
    done = 0
    for item_id, pname in pending_items(app, session_ids, serial):
        try:
            store_item(app, item_id, profiles.get(pname or ""), actor)
            done += 1
        except StorageUnavailable as e:
            note_error(app, item_id, str(e))
            return done, str(e)
        except StorageIntegrityError as e:
            note_error(app, item_id, str(e))
            log.error("integrity error storing item %s: %s", item_id, e)
        except Exception as e:  # noqa: BLE001 - one file's fault never stops the others; it stays in the spool
            log.exception("storing item %s failed", item_id)
            note_error(app, item_id, f"{type(e).__name__}: {e}")
    return done, None


def close_drained_sessions(app: App, actor: str) -> int:
    """Docks that ended incomplete only because their copies waited in the spool (storage was
    down, the station was killed mid-upload): once every file of the device was copied and
    every copy is stored, they are complete."""
    closed = 0
    item = select(OffloadItem.id).where(OffloadItem.session_id == DockSession.id)
    unfinished = item.where(or_(OffloadItem.phase.in_((Phase.PENDING, Phase.COPIED)),
                                OffloadItem.status == ItemStatus.SKIPPED))
    with app.catalog.session() as s:
        drained = s.execute(select(DockSession).where(DockSession.station == app.station,
                                                      DockSession.state == SessionState.INCOMPLETE,
                                                      exists(item), ~exists(unfinished),
                                                      # every file of the device was reached: a dock cut
                                                      # short (a kill between two files) stays incomplete
                                                      or_(DockSession.files_total.is_(None),
                                                          DockSession.files_done >= DockSession.files_total))).scalars().all()
        for d in drained:
            d.state = SessionState.COMPLETE
            d.message = f"completed after the dock: its spool copies were stored ({d.message or 'incomplete'})"
            custody_log.record(s, "session_complete", actor=actor, session_id=d.id,
                               detail={"late": True, "message": d.message})
            closed += 1
    return closed


def note_error(app: App, item_id: int, err: str) -> None:
    with app.catalog.session() as s:
        it = s.get(OffloadItem, item_id)
        if it is not None:
            it.attempts += 1
            it.last_error = err
