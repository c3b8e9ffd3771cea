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
from ingest.volume import Entry
from storage.fixity import sha256_fd
from storage.local import fsync_dir

log = logging.getLogger("custody.wipe")


def wipe_session(app: App, sid: int, volume: Path, entries: dict[str, Entry], actor: str) -> int:
    wiped = 0
    with app.catalog.session() as s:
        items = s.execute(select(OffloadItem).where(OffloadItem.session_id == sid, OffloadItem.phase == "stored")
                          ).scalars().all()
        todo = [(it.id, it.device_path, it.size, it.mtime_ns, it.inode, it.media_id) for it in items]
    for item_id, rel, size, mtime_ns, inode, media_id in todo:
        e = entries.get(rel)
        if e is None or media_id is None:
            continue
        with app.catalog.session() as s:
            m = s.get(Media, media_id)
            if m is None or m.verified_at is None or m.status != "stored":
                continue
            key, sha, msize = m.storage_key, m.sha256, m.size
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
            it.phase = "wiped"
            custody_log.record(s, "wiped", actor=actor, media_id=media_id, session_id=sid, subject=f"sha256:{sha}",
                               detail={"device_path": rel, "verified_key": key})
        wiped += 1
    return wiped


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
