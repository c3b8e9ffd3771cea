"""Delete device files, only ever after their copy is stored and verified.

A file is wiped only when: its item is stored (or a verified duplicate), the media row
records a verification, the store still confirms the object, and the device file is
byte-for-byte the one copied: same inode, size and modification time, and - read once more
and hashed - the same SHA-256 (a file rewritten in place with its time put back is caught).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import select

from catalog.app import App
from core.errors import RefusedEntry
from catalog import custody_log
from catalog.models import Media, OffloadItem
from ingest.offload import open_device_file
from ingest.states import Phase
from ingest.volume import Entry
from storage.fixity import sha256_fd
from storage.local import fsync_dir

log = logging.getLogger("custody.wipe")


def wipe_session(app: App, sid: int, volume: Path, entries: dict[str, Entry], actor: str) -> int:
    """Wipe this session's stored files from the device; returns how many were wiped."""
    wiped = 0
    for item_id, rel, size, mtime_ns, inode, media_id, key, sha, msize in _wipeable(app, sid):
        e = entries.get(rel)
        if e is None:
            continue
        try:
            app.store.confirm(key, sha, msize)
            st = os.lstat(e.abspath)
        except Exception as ex:  # noqa: BLE001 - any doubt means: do not wipe
            log.warning("not wiping %s: %s", rel, ex)
            continue
        if (st.st_ino, st.st_size, st.st_mtime_ns) != (inode, size, mtime_ns) or size != msize:
            log.warning("not wiping %s: the device file changed since it was copied", rel)
            continue
        if _device_sha256(e) != sha:
            _changed_on_device(app, item_id, sid, media_id, rel, sha, actor)
            continue
        os.unlink(e.abspath)
        fsync_dir(os.path.dirname(e.abspath))
        with app.catalog.session() as s:
            it = s.get(OffloadItem, item_id)
            it.phase = Phase.WIPED
            custody_log.record(s, "wiped", actor=actor, media_id=media_id, session_id=sid, subject=f"sha256:{sha}",
                               detail={"device_path": rel, "verified_key": key})
        wiped += 1
    return wiped


def _wipeable(app: App, sid: int) -> list[tuple]:
    """The session's stored items whose recording is stored and verified: (item id, device path,
    size, mtime_ns, inode, media id, storage key, sha256, media size)."""
    with app.catalog.session() as s:
        return [tuple(r) for r in s.execute(
            select(OffloadItem.id, OffloadItem.device_path, OffloadItem.size, OffloadItem.mtime_ns,
                   OffloadItem.inode, Media.id, Media.storage_key, Media.sha256, Media.size)
            .join(Media, Media.id == OffloadItem.media_id)
            .where(OffloadItem.session_id == sid, OffloadItem.phase == Phase.STORED,
                   Media.verified_at.is_not(None), Media.status == "stored")
            .order_by(OffloadItem.id)).all()]


CHANGED = "not wiped: the device file's bytes changed after its copy was stored; it will be read again"


def _changed_on_device(app: App, item_id: int, sid: int, media_id: int, rel: str, sha: str, actor: str) -> None:
    """Same name, size and time, other bytes: the stored copy stays the evidence of what was
    copied, and the device holds something never captured.  Say so, and make sure the next
    dock reads the file again instead of trusting name, size and time."""
    log.warning("not wiping %s: its bytes are no longer the ones stored", rel)
    with app.catalog.session() as s:
        it = s.get(OffloadItem, item_id)
        it.mtime_ns, it.reason = None, CHANGED  # no (path, size, mtime) match can skip it again
        custody_log.record(s, "wipe_refused", actor=actor, media_id=media_id, session_id=sid, outcome="refused",
                           subject=f"sha256:{sha}", detail={"device_path": rel, "reason": CHANGED})


def _device_sha256(e: Entry) -> str | None:
    """Hash the device file as it is now, opened as the offload opens it (no link followed, the
    same regular file that was listed); None on any doubt."""
    try:
        fd = open_device_file(e)
    except (OSError, RefusedEntry):
        return None
    try:
        return sha256_fd(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
