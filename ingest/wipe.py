"""Delete device files, only ever after their copy is stored and verified.

A file is wiped only when: its item is stored (or a verified duplicate), the media row
records a verification, the store still confirms the object, and the device file is
byte-for-byte the one copied (same inode, size and modification time).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import select

from custody.app import App
from indexer.catalog import custody_log
from indexer.catalog.models import Media, OffloadItem
from ingest.volume import Entry

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
        os.unlink(e.abspath)
        _fsync_parent(e.abspath)
        with app.catalog.session() as s:
            it = s.get(OffloadItem, item_id)
            it.phase = "wiped"
            custody_log.record(s, "wiped", actor=actor, media_id=media_id, session_id=sid, subject=f"sha256:{sha}",
                               detail={"device_path": rel, "verified_key": key})
        wiped += 1
    return wiped


def _fsync_parent(path: bytes) -> None:
    fd = os.open(os.path.dirname(path) or b".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
