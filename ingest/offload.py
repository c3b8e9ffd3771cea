"""One read of a device file: copy it to the station spool while hashing it.

The copy and the SHA-256 run side by side (hashlib releases the GIL), over a small
ring of reused buffers, so memory stays flat whatever the file size.  The spool copy
is written under a temporary name, fsynced and atomically renamed to its hash.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from custody.errors import DeviceGone, RefusedEntry, SpoolFull
from ingest.volume import Entry
from storage.local import fsync_dir, write_all

RING = 8  # buffers in flight: reading one while others are hashed and written


class FileChanged(Exception):
    """The device file changed while it was being copied (still being written)."""


class ReadFailed(Exception):
    """The device returned an I/O error for this file."""


@dataclass
class CopyResult:
    sha256: str
    size: int
    spool_name: str
    mtime_ns: int


def spool_tmp_dir(spool: Path) -> Path:
    return spool / "tmp"


def spool_path(spool: Path, name: str) -> Path:
    return spool / "objects" / name


def open_device_file(entry: Entry) -> int:
    """Open without following links or blocking on FIFOs, and prove it is the file we scanned."""
    try:
        fd = os.open(entry.abspath, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RefusedEntry("became a symbolic link after the scan; refused unread") from e
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_ino != entry.inode or st.st_dev != entry.dev:
        os.close(fd)
        raise RefusedEntry("replaced by a different or non-regular file after the scan; refused unread")
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except OSError:
        pass
    return fd


def copy_and_hash(entry: Entry, volume: Path, spool: Path, chunk: int = 4 * 1024 * 1024,
                  progress: Callable[[int], None] | None = None) -> CopyResult:
    try:
        src = open_device_file(entry)
    except RefusedEntry:
        raise
    except OSError as e:
        if not _present(volume, entry):
            raise DeviceGone("device volume disappeared") from e
        raise ReadFailed(f"cannot open on the device: {e.strerror or e}") from e
    tmp_dir = spool_tmp_dir(spool)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    out = -1
    try:
        out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        h = hashlib.sha256()
        total = _pump_kernel(src, out, h, volume, entry, progress)
        if total is None:  # no in-kernel copy between these file systems: copy through a buffer ring
            total = _pump(src, out, h, chunk, volume, entry, progress)
        os.fsync(out)
        os.close(out)
        out = -1
        after = os.fstat(src)
        if after.st_size != entry.size or after.st_mtime_ns != entry.mtime_ns or total != entry.size:
            raise FileChanged(f"file changed during copy ({entry.size} -> {after.st_size} bytes)")
        digest = h.hexdigest()
        final = spool_path(spool, digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # same name = same bytes (content-addressed)
        fsync_dir(final.parent)
        return CopyResult(sha256=digest, size=total, spool_name=digest, mtime_ns=entry.mtime_ns)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise SpoolFull(f"spool disk full while copying ({e.strerror})") from e
        raise
    finally:
        os.close(src)
        if out >= 0:
            os.close(out)
        if tmp.exists():
            tmp.unlink()


KERNEL_CHUNK = 8 * 1024 * 1024
HASH_CHUNK = 256 * 1024  # small enough to stay in the CPU cache while it is hashed
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTSUP)


def _pump_kernel(src: int, out: int, h: "hashlib._Hash", volume: Path, entry: Entry,
                 progress: Callable[[int], None] | None) -> int | None:
    """Copy with copy_file_range (the device is read once, into the kernel, and written
    without a trip through Python), while a second thread hashes what landed in the spool
    file so far.  The hash covers exactly the bytes that will be uploaded.  Returns None
    when the kernel cannot copy between these file systems (e.g. vfat -> ext4 on older
    kernels); nothing has been written then."""
    copied = 0
    cond = threading.Condition()
    state = {"done": 0, "finished": False, "error": None}

    def hasher() -> None:
        buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        pos = 0
        try:
            while True:
                with cond:
                    while state["done"] <= pos and not state["finished"]:
                        cond.wait()
                    avail, finished = state["done"], state["finished"]
                if pos >= avail and finished:
                    return
                while pos < avail:
                    n = os.preadv(out, [view[:min(HASH_CHUNK, avail - pos)]], pos)
                    if n <= 0:
                        raise OSError(errno.EIO, "spool copy shorter than written")
                    h.update(view[:n])
                    pos += n
        except BaseException as e:  # noqa: BLE001 - handed to the copying thread
            state["error"] = e

    t = threading.Thread(target=hasher, name="sha256-spool", daemon=True)
    started = False
    try:
        while True:
            try:
                n = os.copy_file_range(src, out, KERNEL_CHUNK)
            except OSError as e:
                if copied == 0 and e.errno in _NO_KERNEL_COPY:
                    return None
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if not _present(volume, entry):
                    raise DeviceGone("device volume disappeared during copy") from e
                raise ReadFailed(f"device read error: {e.strerror or e}") from e
            if not started:
                t.start()
                started = True
            if n == 0:
                os.fsync(out)  # flush to disk while the hasher finishes its tail
                break
            copied += n
            with cond:
                state["done"] = copied
                cond.notify()
            if progress:
                progress(n)
    finally:
        with cond:
            state["finished"] = True
            cond.notify()
        if started:
            t.join()
    if state["error"] is not None:
        raise state["error"]  # type: ignore[misc]
    return copied


def _pump(src: int, out: int, h: "hashlib._Hash", chunk: int, volume: Path, entry: Entry,
          progress: Callable[[int], None] | None) -> int:
    """Read on this thread; hash and write each chunk on their own threads (both release the
    GIL), so reading chunk i+1 overlaps hashing and writing chunk i.  A buffer is reused only
    after both its hash and its write are done."""
    bufs = [bytearray(chunk) for _ in range(RING)]
    inflight: list[tuple[Future[None], Future[None]] | None] = [None] * RING
    total = 0
    i = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-write") as writer:
        try:
            while True:
                slot = i % RING
                if inflight[slot] is not None:
                    for f in inflight[slot]:
                        f.result()  # re-raises a write error (e.g. ENOSPC) here
                buf = bufs[slot]
                try:
                    n = os.readv(src, [buf])
                except OSError as e:
                    if not _present(volume, entry):
                        raise DeviceGone("device volume disappeared during copy") from e
                    raise ReadFailed(f"device read error: {e.strerror or e}") from e
                if n == 0:
                    break  # a short read shows up as a size mismatch after the copy
                view = memoryview(buf)[:n]
                # ordered: one hashing thread, one writing thread
                inflight[slot] = (hasher.submit(h.update, view), writer.submit(write_all, out, view))
                total += n
                if progress:
                    progress(n)
                i += 1
        finally:
            for pair in inflight:
                if pair is not None:
                    for f in pair:
                        f.exception()  # wait: never return while a thread still uses a buffer
        for pair in inflight:
            if pair is not None:
                for f in pair:
                    f.result()
    return total


def _present(volume: Path, entry: Entry) -> bool:
    """A pulled device shows as a vanished volume or an emptied mount point."""
    return volume.is_dir() and os.path.isdir(os.path.dirname(entry.abspath))


def clean_spool_tmp(spool: Path) -> int:
    """Remove half-written copies left by a crash (the device still has the original)."""
    d = spool_tmp_dir(spool)
    n = 0
    if d.is_dir():
        for p in d.glob("*.part"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def free_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
