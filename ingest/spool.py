"""The station spool: where a device's files wait, durable, between the dock and the store.

Its layout is defined here and nowhere else::

    <spool_dir>/tmp/<uuid>.part      a copy being written (removed at start-up after a crash)
    <spool_dir>/objects/<sha256>     a complete copy, named by its SHA-256 (same name = same bytes)
    <spool_dir>/locks/<hash>.lock    one offload per device at a time (flock on the serial's file)
    <spool_dir>/damaged/<sha>.<t>    a copy that no longer hashes to its name, set aside for diagnosis
    <spool_dir>/uploads/<id>.part    a field upload being received (ingest/field.py); rejected/ beside it

Offload writes copies, upload stores them, the indexer reads them while they are here, and the
uploader's clean-up removes them once their recording is stored, verified and indexed.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog.db import Catalog
from catalog.models import Media, OffloadItem
from core.errors import SpoolFull
from core.settings import Settings
from ingest.states import Phase
from storage.local import fsync_dir, seal

ORPHAN_AGE_S = 3600  # a copy nobody records is removed only when older than this (never one in flight)


class DeviceBusy(Exception):
    """Another process on this station is offloading the same device."""


# Device locks this process holds: a second volume of the same device docked to this very
# daemon is told apart from another process (flock alone cannot say who holds it).
_HELD_HERE: set[Path] = set()
_HELD_GUARD = threading.Lock()


class DeviceLock:
    """One offload per device at a time on this station (daemon and CLI alike)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "DeviceLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _HELD_GUARD:
            if self.path in _HELD_HERE:
                raise DeviceBusy("this station is offloading this device from another volume right now "
                                 "(the same serial docked twice); trying again while it stays docked "
                                 "/ 本站正在从另一设备卷导入该设备")
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                os.close(self.fd)
                raise DeviceBusy("this device is already being offloaded by another process on this station "
                                 "/ 本站另一进程正在导入该设备") from e
            _HELD_HERE.add(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        with _HELD_GUARD:
            _HELD_HERE.discard(self.path)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


class Spool:
    """One station spool directory: its paths and what is done to it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, settings: Settings) -> "Spool":
        """This station's spool (`[station].spool_dir`)."""
        return cls(settings.path(settings.station.spool_dir))

    # ------------------------------------------------------------------ layout
    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def damaged(self) -> Path:
        return self.root / "damaged"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def path(self, sha256: str) -> Path:
        """Where the complete copy of these bytes is (or would be)."""
        return self.objects / sha256

    def new_tmp(self) -> Path:
        """A fresh name for a copy being written (its directory exists)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{uuid.uuid4().hex}.part"

    def commit(self, tmp: Path, sha256: str) -> Path:
        """Move a complete, fsynced copy whose SHA-256 is known to its content-addressed name
        (atomic; same name = same bytes) and make the rename durable."""
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        seal(tmp, sha256)  # lets the local store take this very file later (issue 14: one write per byte)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return final

    def lock(self, serial: str) -> DeviceLock:
        """`with spool.lock(serial):` holds the device for this process; DeviceBusy if another has it."""
        return DeviceLock(self.locks / (hashlib.sha256(serial.encode()).hexdigest()[:32] + ".lock"))

    # ------------------------------------------------------------------ space
    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def check_space(self, need: int, floor: int) -> None:
        """SpoolFull unless `need` bytes fit above the floor.  Nothing is ever deleted for room."""
        free = self.free_bytes()
        if free - need < floor:
            raise SpoolFull(f"spool has {free} bytes free, the next file needs {need} plus a floor of {floor}; "
                            "nothing was deleted to make room")

    # ------------------------------------------------------------------ care
    def set_aside(self, src: Path) -> Path:
        """Move a damaged copy out of `objects/` (kept for diagnosis, never uploaded)."""
        self.damaged.mkdir(parents=True, exist_ok=True)
        kept = self.damaged / f"{src.name}.{int(time.time())}"
        os.replace(src, kept)
        return kept

    def clean_tmp(self) -> int:
        """Remove half-written copies left by a crash (the device still has the original)."""
        n = 0
        if self.tmp.is_dir():
            for p in self.tmp.glob("*.part"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def clean(self, catalog: Catalog) -> int:
        """Remove copies whose recording is stored, verified and indexed (they are caches now),
        and orphans of a crash between the rename and the catalog's commit."""
        if not self.objects.is_dir():
            return 0
        files = {p.name: p for p in self.objects.iterdir()}
        if not files:
            return 0
        waiting, referenced, media = _spool_references(catalog, list(files))
        removed = 0
        for name, p in files.items():
            if name in waiting:
                continue
            m = media.get(name)
            if m is not None and m.verified_at is not None and m.index_state != "pending":
                p.unlink(missing_ok=True)
                removed += 1
            elif m is None and name not in referenced and time.time() - p.stat().st_mtime > ORPHAN_AGE_S:
                p.unlink(missing_ok=True)  # old enough not to be in flight
                removed += 1
        return removed


def _spool_references(catalog: Catalog, names: list[str]) -> tuple[set[str], set[str], dict[str, Any]]:
    """(copies still waiting to be stored, copies any item names, media rows by sha256) -
    a few queries per 500 spool files, not three per file."""
    waiting: set[str] = set()
    referenced: set[str] = set()
    media: dict[str, Any] = {}
    with catalog.session() as s:
        for i in range(0, len(names), 500):
            chunk = names[i:i + 500]
            for sha, phase in s.execute(select(OffloadItem.sha256, OffloadItem.phase)
                                        .where(OffloadItem.sha256.in_(chunk))):
                referenced.add(sha)
                if phase == Phase.COPIED:
                    waiting.add(sha)
            media.update((r.sha256, r) for r in s.execute(select(Media.sha256, Media.verified_at, Media.index_state)
                                                          .where(Media.sha256.in_(chunk))))
    return waiting, referenced, media
