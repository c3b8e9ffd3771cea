"""One read of a device file: copy it to the station spool while hashing it.

The device is read once, into a small ring of reused buffers; each chunk is hashed
and written to the spool side by side (hashlib and write() release the GIL), so memory
stays flat whatever the file size.  The spool copy is written with direct I/O where the
file system allows it, under a temporary name, fsynced and atomically renamed to its hash.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.errors import DeviceGone, RefusedEntry, SpoolFull
from ingest.spool import Spool
from ingest.volume import Entry

RING = 6  # buffers in flight: reading one while others are hashed and written


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


def copy_and_hash(entry: Entry, volume: Path, spool: Spool, chunk: int = 8 * 1024 * 1024,
                  progress: Callable[[int], None] | None = None) -> CopyResult:
    try:
        src = open_device_file(entry)
    except RefusedEntry:
        raise
    except OSError as e:
        if not _present(volume, entry):
            raise DeviceGone("device volume disappeared") from e
        raise ReadFailed(f"cannot open on the device: {e.strerror or e}") from e
    tmp = spool.new_tmp()
    out = -1
    try:
        out = _open_spool_file(tmp)
        h = hashlib.sha256()
        total = _pump(src, out, h, _aligned(chunk), volume, entry, progress)
        os.fsync(out)  # the disk's own cache and the file's metadata (direct writes skip the page cache)
        os.close(out)
        out = -1
        after = os.fstat(src)
        if after.st_size != entry.size or after.st_mtime_ns != entry.mtime_ns or total != entry.size:
            raise FileChanged(f"file changed during copy ({entry.size} -> {after.st_size} bytes)")
        digest = h.hexdigest()
        spool.commit(tmp, digest)  # same name = same bytes (content-addressed)
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


ALIGN = 4096  # direct I/O wants buffer, length and file offset aligned to the disk's block size
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def _aligned(chunk: int) -> int:
    return max(ALIGN, chunk // ALIGN * ALIGN)


def _open_spool_file(tmp: Path) -> int:
    """The spool copy is written with direct I/O where the file system allows it: the bytes go
    from our buffer to the disk without a second copy into the page cache and without the
    kernel's write-back thread competing with the hash for the CPU (on two cores that made the
    copy 1.5x slower than `cp`).  Where it is refused (tmpfs, some FUSE) the writes are buffered."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    if _O_DIRECT:
        try:
            return os.open(tmp, flags | _O_DIRECT, 0o600)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
    return os.open(tmp, flags, 0o600)


class _SpoolWriter:
    """Writes whole aligned chunks directly; the first write direct I/O refuses (the file's
    unaligned tail, or a file system that takes the flag at open and rejects it at write)
    turns it off for the rest of the file, so every byte is still written exactly once."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.direct = bool(_O_DIRECT) and bool(fcntl.fcntl(fd, fcntl.F_GETFL) & _O_DIRECT)

    def write(self, view: memoryview) -> None:
        while view:
            if self.direct and len(view) % ALIGN:
                self._buffered()
            try:
                n = os.write(self.fd, view)
            except OSError as e:
                if not (self.direct and e.errno == errno.EINVAL):
                    raise
                self._buffered()
                continue
            view = view[n:]
            if view and self.direct:
                self._buffered()  # a short direct write leaves the file offset unaligned

    def _buffered(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~_O_DIRECT)
        self.direct = False


def _fill(src: int, buf: mmap.mmap, volume: Path, entry: Entry) -> int:
    """Read until the buffer is full or the file ends: chunks stay aligned for direct I/O
    even where the device returns short reads (USB, FUSE)."""
    view = memoryview(buf)
    got = 0
    try:
        while got < len(buf):
            n = os.readv(src, [view[got:]])
            if n == 0:
                break
            got += n
    except OSError as e:
        if not _present(volume, entry):
            raise DeviceGone("device volume disappeared during copy") from e
        raise ReadFailed(f"device read error: {e.strerror or e}") from e
    finally:
        view.release()
    return got


def _pump(src: int, out: int, h: "hashlib._Hash", chunk: int, volume: Path, entry: Entry,
          progress: Callable[[int], None] | None) -> int:
    """Read the device on this thread into a ring of page-aligned buffers; hash and write each
    chunk on their own threads (both release the GIL), so reading chunk i+1 overlaps hashing
    and writing chunk i.  A buffer is reused only after both its hash and its write are done,
    so the hash covers exactly the bytes written.  Memory: RING x chunk, whatever the size."""
    bufs = [mmap.mmap(-1, chunk) for _ in range(RING)]  # anonymous maps are page-aligned
    writer_fd = _SpoolWriter(out)
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
                n = _fill(src, bufs[slot], volume, entry)
                if n == 0:
                    break  # a short read shows up as a size mismatch after the copy
                view = memoryview(bufs[slot])[:n]
                # ordered: one hashing thread, one writing thread
                inflight[slot] = (hasher.submit(h.update, view), writer.submit(writer_fd.write, view))
                total += n
                if progress:
                    progress(n)
                i += 1
                if n < chunk:
                    break  # the end of the file
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
