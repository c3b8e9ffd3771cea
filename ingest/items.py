"""One device file within a dock: its `offload_items` row from first sight to its result.

The stages (ingest/stages.py) call these: the records of files that are never read (refused,
skipped), the copy of one file to the spool (waiting until it is no longer being written), the
files already stored by an earlier dock, and the per-file results of a dock.  No catalog
transaction is held open while the device is read or the store is written.
"""
from __future__ import annotations

import os
import time

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.models import Device, DockSession, Media, OffloadItem, Sighting, utcnow
from core.errors import DeviceGone, RefusedEntry
from ingest import volume as vol
from ingest.offload import CopyResult, FileChanged, ReadFailed, copy_and_hash
from ingest.profiles import Profile, recognising, station_profiles
from ingest.states import ItemStatus, Phase
from ingest.task import DockTask, FileResult

REFUSED_KINDS = {
    "symlink": "symbolic link: never followed or read",
    "special": "device/special file: never read",
}
Closed = tuple[ItemStatus, str]  # a file that ends without a copy: (refused|skipped, why)


def media_entries(entries: list[vol.Entry], profile: Profile) -> list[vol.Entry]:
    """The recordings the profile takes from the volume (AppleDouble shadows are not recordings)."""
    return [e for e in entries if e.kind == "file" and profile.is_media(e.rel) and not vol.is_appledouble(e)]


# --------------------------------------------------------------------------- files never read
def record_refused(s: Session, task: DockTask) -> None:
    for e in (e for e in task.entries if e.kind in REFUSED_KINDS):
        why = REFUSED_KINDS[e.kind]
        s.add(OffloadItem(session_id=task.session, device_path=e.rel, size=None, phase=Phase.DONE,
                          status=ItemStatus.REFUSED, reason=why))
        custody_log.record(s, "refused", actor=task.actor, session_id=task.session, outcome="refused",
                           subject=f"device_path:{e.rel}", detail={"reason": why, "kind": e.kind})
        task.result.files.append(FileResult(e.rel, None, None, ItemStatus.REFUSED, why))


def record_unscanned(s: Session, task: DockTask) -> None:
    """Folders the scan could not list may hold recordings: the dock is not complete."""
    for e in (e for e in task.entries if e.kind == "unscanned"):
        _skipped(s, task, e.rel, None, e.note)


def record_unclaimed(s: Session, task: DockTask) -> None:
    """The volume also looks like another device kind: files that profile would take as
    recordings but this one does not are reported (the dock is incomplete), never ignored."""
    profile = task.profile
    others = [p for p in recognising(station_profiles(task.app.settings), task.entries) if p.name != profile.name]
    if not others:
        return
    for e in task.entries:
        if e.kind != "file" or profile.is_media(e.rel) or vol.is_appledouble(e):
            continue
        claimed = [p.name for p in others if p.is_media(e.rel)]
        if claimed:
            _skipped(s, task, e.rel, e.size, f"recording of a {claimed[0]} device on a volume recognised as "
                                             f"{profile.name}; not offloaded (check the device profiles)")


def _skipped(s: Session, task: DockTask, rel: str, size: int | None, why: str) -> None:
    s.add(OffloadItem(session_id=task.session, device_path=rel, size=size, phase=Phase.DONE,
                      status=ItemStatus.SKIPPED, reason=why))
    custody_log.record(s, "skipped", actor=task.actor, session_id=task.session, outcome="failed",
                       subject=f"device_path:{rel}", detail={"reason": why})


# --------------------------------------------------------------------------- one file copied
def copy_one(task: DockTask, e: vol.Entry, sidecar: dict | None) -> int | None:
    """Copy one file to the spool.  Returns the item id when a copy now waits to be stored.
    DeviceGone (the volume went away) propagates: the offload stops there."""
    item_id = _start_item(task, e, sidecar)
    if item_id is None:
        return None  # stored by an earlier dock (same path, size and time): not read again
    outcome = _copy_when_stable(task, e)

    def record(s: Session) -> None:  # run again whole if PostgreSQL picks it as a deadlock victim
        it = s.get(OffloadItem, item_id)
        if isinstance(outcome, CopyResult):
            it.phase, it.sha256, it.size, it.mtime_ns = Phase.COPIED, outcome.sha256, outcome.size, outcome.mtime_ns
            it.spool_name = outcome.spool_name
            custody_log.record(s, "copied", actor=task.actor, session_id=task.session,
                               subject=f"sha256:{outcome.sha256}", detail={"device_path": e.rel, "size": outcome.size})
        else:
            _close(s, task, it, *outcome)
        _count_done(s, task, e.size)

    task.app.catalog.run(record)
    return item_id if isinstance(outcome, CopyResult) else None


def _start_item(task: DockTask, e: vol.Entry, sidecar: dict | None) -> int | None:
    """The file's item, in one transaction with the look-up of an earlier dock's copy (trusted
    only when nothing will be wiped: a wipe needs the bytes read again)."""
    def start(s: Session) -> int | None:  # run again whole if PostgreSQL picks it as a deadlock victim
        known = None if task.wipe else _known(s, task.identity.serial, e, task.app.station)
        if known is not None:
            _carry_known(s, task, e, known)
            _count_done(s, task, e.size)
            return None
        item = OffloadItem(session_id=task.session, device_path=e.rel, size=e.size, mtime_ns=e.mtime_ns,
                           inode=e.inode, sidecar=sidecar)
        s.add(item)
        s.flush()
        return item.id

    return task.app.catalog.run(start)


def _copy_when_stable(task: DockTask, e: vol.Entry) -> CopyResult | Closed:
    """Wait until the file is no longer being written, then copy it (hashing as it goes)."""
    st = task.station
    entry: vol.Entry | None = e
    reason = "file kept changing; left on the device unwiped"
    for attempt in range(st.file_busy_retries + 1):
        age = time.time() - entry.mtime_ns / 1e9
        if age < st.file_stable_seconds:
            # Recently modified - or stamped in the future by a device clock that runs ahead.
            # Stable means: unchanged over a wait, whatever the clocks say.
            time.sleep(st.file_stable_seconds if age < 0 else st.file_stable_seconds - age)
            before, entry = entry, _restat(entry)
            if entry is None:
                return ItemStatus.SKIPPED, "file vanished before it could be copied"
            if (entry.size, entry.mtime_ns, entry.inode) != (before.size, before.mtime_ns, before.inode):
                if attempt < st.file_busy_retries:
                    continue
                return ItemStatus.SKIPPED, (f"still being written (modified within the last "
                                            f"{st.file_stable_seconds:g}s after {st.file_busy_retries} waits); "
                                            "left on the device unwiped")
        try:
            return copy_and_hash(entry, task.volume, task.spool, st.copy_chunk_bytes)
        except FileChanged as ex:
            reason = f"still being written ({ex}); left on the device unwiped"
            entry = _restat(entry)
            if entry is None:
                if not task.volume.is_dir():
                    raise DeviceGone("device volume disappeared") from ex
                return ItemStatus.SKIPPED, "file vanished during copy; nothing stored"
        except RefusedEntry as ex:
            return ItemStatus.REFUSED, str(ex)
        except ReadFailed as ex:
            return ItemStatus.SKIPPED, f"{ex}; left on the device unwiped"
    return ItemStatus.SKIPPED, reason


def _restat(e: vol.Entry) -> vol.Entry | None:
    try:
        st = os.lstat(e.abspath)
    except OSError:
        return None
    return vol.Entry(e.rel, e.abspath, e.kind, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def _close(s: Session, task: DockTask, it: OffloadItem, status: ItemStatus, reason: str) -> None:
    it.phase, it.status, it.reason = Phase.DONE, status, reason
    refused = status == ItemStatus.REFUSED
    custody_log.record(s, "refused" if refused else "skipped", actor=task.actor, session_id=it.session_id,
                       outcome="refused" if refused else "failed", subject=f"device_path:{it.device_path}",
                       detail={"reason": reason})
    if refused:
        refused_result = FileResult(it.device_path, None, None, ItemStatus.REFUSED, reason)
        if refused_result not in task.result.files:  # once, even when the transaction is run again
            task.result.files.append(refused_result)


def _count_done(s: Session, task: DockTask, nbytes: int) -> None:
    d = s.get(DockSession, task.session)
    d.files_done += 1
    d.bytes_done += nbytes
    d.heartbeat_at = utcnow()


# --------------------------------------------------------------------------- stored by an earlier dock
def _known(s: Session, serial: str, e: vol.Entry, station: str) -> OffloadItem | None:
    """The same file (device, path, size, mtime) already stored from an earlier dock, or waiting
    in *this* station's spool (another station's spool copy is not counted on: that station may
    be down for good; the file is copied again here, and stored once by its hash)."""
    own_spool = and_(OffloadItem.phase == Phase.COPIED,
                     or_(OffloadItem.station == station, OffloadItem.station.is_(None)))
    return s.execute(
        select(OffloadItem).join(DockSession, DockSession.id == OffloadItem.session_id)
        .join(Device, Device.id == DockSession.device_id)
        .where(Device.serial == serial, OffloadItem.device_path == e.rel, OffloadItem.size == e.size,
               OffloadItem.mtime_ns == e.mtime_ns,
               or_(OffloadItem.phase.in_((Phase.STORED, Phase.WIPED)), own_spool),
               OffloadItem.sha256.is_not(None))
        .order_by(OffloadItem.id.desc())
    ).scalars().first()


def _carry_known(s: Session, task: DockTask, e: vol.Entry, known: OffloadItem) -> None:
    sid = task.session
    if known.phase == Phase.COPIED:
        # Storage was down last time: the spool copy still waits; this dock sees it again.
        s.add(OffloadItem(session_id=sid, device_path=e.rel, size=e.size, mtime_ns=e.mtime_ns, inode=e.inode,
                          sha256=known.sha256, spool_name=known.spool_name, phase=Phase.DONE,
                          status=ItemStatus.DUPLICATE,
                          reason=f"copy from dock session {known.session_id} still waits in the spool"))
        return
    reason = f"already stored from dock session {known.session_id} (same path, size and time); not re-read"
    s.add(OffloadItem(session_id=sid, device_path=e.rel, size=e.size, mtime_ns=e.mtime_ns, inode=e.inode,
                      sha256=known.sha256, phase=Phase.STORED, status=ItemStatus.DUPLICATE, reason=reason,
                      media_id=known.media_id))
    s.add(Sighting(media_id=known.media_id, session_id=sid, device_path=e.rel))
    custody_log.record(s, "duplicate", actor=task.actor, media_id=known.media_id, session_id=sid,
                       subject=f"sha256:{known.sha256}", detail={"device_path": e.rel, "reason": reason})


# --------------------------------------------------------------------------- results
def collect_results(s: Session, task: DockTask, outage: str | None) -> None:
    """Each item's result into the task's result (refused files are reported as they are met)."""
    items = s.execute(select(OffloadItem).where(OffloadItem.session_id == task.session,
                                                OffloadItem.status.is_distinct_from(ItemStatus.REFUSED))
                      .order_by(OffloadItem.id)).scalars().all()
    files = task.result.files
    for it in items:
        if it.phase == Phase.COPIED:
            why = f"copied to the station spool; upload pending ({outage or 'in progress'}); not wiped"
            files.append(FileResult(it.device_path, it.sha256, it.size, ItemStatus.SKIPPED, why))
        elif it.phase == Phase.PENDING:
            files.append(FileResult(it.device_path, it.sha256, it.size, ItemStatus.SKIPPED, it.reason or "not copied"))
        elif it.status == ItemStatus.DUPLICATE and it.media_id is None and it.sha256:
            _settle_spooled_duplicate(s, it)
            status = ItemStatus.DUPLICATE if it.media_id is not None else ItemStatus.SKIPPED
            files.append(FileResult(it.device_path, it.sha256, it.size, status, it.reason, it.media_id))
        else:
            files.append(FileResult(it.device_path, it.sha256, it.size, it.status or ItemStatus.SKIPPED, it.reason,
                                    it.media_id))


def _settle_spooled_duplicate(s: Session, it: OffloadItem) -> None:
    """A file whose earlier copy waited in the spool: say what became of that copy now."""
    m = s.execute(select(Media).where(Media.sha256 == it.sha256)).scalar_one_or_none()
    if m is not None and m.status == "stored":
        it.media_id, it.phase = m.id, Phase.STORED
        s.add(Sighting(media_id=m.id, session_id=it.session_id, device_path=it.device_path))
        it.reason = f"stored from the copy an earlier dock left in the station spool (media {m.id})"
    elif s.execute(select(OffloadItem.id).where(OffloadItem.sha256 == it.sha256, OffloadItem.phase == Phase.PENDING,
                                                OffloadItem.reason.like("spool copy damaged%")).limit(1)).first():
        it.reason = ("the copy an earlier dock left in the station spool was damaged and set aside; not stored, "
                     "not wiped: dock again to copy it afresh from the device")
    else:
        it.reason = "the copy an earlier dock left in the station spool is not stored yet (upload pending); not wiped"


def changed_on_device(s: Session, task: DockTask, reason: str) -> None:
    """Files whose device bytes changed after their copy (the wipe refused them): marked in the result."""
    changed = set(s.execute(select(OffloadItem.device_path).where(OffloadItem.session_id == task.session,
                                                                  OffloadItem.reason == reason)).scalars())
    for f in task.result.files:
        if f.path in changed:
            f.reason = reason
    task.result.changed_on_device = len(changed)
