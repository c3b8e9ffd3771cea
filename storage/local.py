"""Local-directory object store: the embedded default.

Same guarantees as S3 Object Lock as far as a file system can give them: objects
are written once (temp name, fsync, atomic rename, then read-only), never
overwritten, and `delete` refuses while a retain-until date or legal hold stands.
Lock state lives in a sidecar tree `_locks/` so it survives restarts.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from core.errors import ObjectLocked, SourceMismatch, StorageIntegrityError, StorageUnavailable
from storage.base import ObjectInfo, StoredObject, key_sha256
from storage.fixity import sha256_file

COPY_CHUNK = 4 * 1024 * 1024


def write_all(fd: int, view: memoryview) -> None:
    """os.write may write less than asked (signals, pipes, some file systems): loop."""
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


SEAL_XATTR = "user.custody.sealed"


def seal(path: Path, sha256: str) -> bool:
    """Mark a durable copy whose SHA-256 was computed while it was written (the spool's
    content-addressed copy): its modification time is set to a value no later write can give
    it (a whole second plus 1 ns) and recorded with the hash in an extended attribute.  A write
    after the seal changes the time, so `sealed` tells an untouched copy from a modified one
    without reading it.  False where the file system keeps no user xattrs (then the local
    store copies and re-hashes, as before issue 14)."""
    try:
        st = os.stat(path)
        mark = (st.st_mtime_ns // 1_000_000_000) * 1_000_000_000 + 1
        os.utime(path, ns=(st.st_atime_ns, mark))
        os.setxattr(path, SEAL_XATTR, f"{sha256}:{st.st_size}:{mark}".encode())
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # the seal is metadata: durable with the copy
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def sealed(path: Path, sha256: str, size: int) -> bool:
    """The copy is as `seal` left it: same hash, size and modification time."""
    try:
        mark = os.getxattr(path, SEAL_XATTR)
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size == size and mark == f"{sha256}:{size}:{st.st_mtime_ns}".encode()


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = f"file://{self.root}"
        self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root not in p.parents or key.startswith("_locks/"):
            raise ValueError(f"key {key!r} escapes the store")
        return p

    def _lock_path(self, key: str) -> Path:
        return self.root / "_locks" / (key + ".json")

    def local_path(self, key: str) -> Path | None:
        p = self._path(key)
        return p if p.exists() else None

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StorageUnavailable(f"local store {self.root} is not a writable directory")

    # ------------------------------------------------------------------ write
    def _write_atomic(self, dest: Path, write: Callable[[int], None]) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            write(fd)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # write-once: read-only
            os.link(tmp, dest)  # link, not rename: never replaces an existing object
            os.unlink(tmp)
            fsync_dir(dest.parent)
        except FileExistsError:
            os.unlink(tmp)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _adopt(self, dest: Path, path: Path, sha256: str, size: int) -> bool:
        """Take a proven copy as the object itself (issue 14: one write per byte): made
        read-only, fsynced, then hard-linked into place (a link never replaces an existing
        object).  False when `path` is on another file system (or links are refused): the
        caller copies, once; likewise when the copy is not sealed (`seal`) or was written to
        since (the copy then re-hashes and refuses it).  The spool's name for the file goes when
        the spool is cleaned; the object keeps the inode.  The wipe re-hashes the object before
        a device is wiped (damage without a write, e.g. a failing disk, is caught there)."""
        st = os.stat(path)
        if st.st_size != size:
            raise SourceMismatch(f"{path.name} holds {st.st_size} bytes, not the evidence's {size}; nothing stored")
        if not sealed(path, sha256, size):
            return False  # not sealed, or written to since: copy and re-hash (refuses a changed copy)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.stat(dest.parent).st_dev != st.st_dev:
            return False
        os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # write-once: read-only
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # durable already (the offload fsynced it); cheap when nothing is dirty
        finally:
            os.close(fd)
        try:
            os.link(path, dest)
        except OSError as e:
            if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                return False
            raise
        fsync_dir(dest.parent)
        return True

    def put_file(self, key: str, path: Path, sha256: str, size: int, *,
                 metadata: dict[str, str] | None = None, content_type: str | None = None,
                 proven: bool = False) -> StoredObject:
        dest = self._path(key)
        existed = dest.exists()
        if not existed and proven:
            try:
                if self._adopt(dest, path, sha256, size):
                    return StoredObject(key=key, size=size, sha256=sha256, checksum=sha256, existed=False)
            except FileExistsError:
                existed = True  # another writer stored it meanwhile: prove it below
            except OSError as e:
                raise StorageUnavailable(f"local store link failed: {e.strerror or e}") from e
        if not existed:
            def copy(fd: int) -> None:
                # One read feeds the copy and the hash; a source that is not the evidence any
                # more is refused before it is linked into place (objects are write-once).
                h = hashlib.sha256()
                with open(path, "rb", buffering=0) as src:
                    buf = bytearray(COPY_CHUNK)
                    view = memoryview(buf)
                    while n := src.readinto(buf):
                        h.update(view[:n])
                        write_all(fd, view[:n])
                if h.hexdigest() != sha256:
                    raise SourceMismatch(f"{path.name} hashes to {h.hexdigest()}, not the evidence hash {sha256}; "
                                         "nothing stored")
            try:
                self._write_atomic(dest, copy)
            except OSError as e:
                raise StorageUnavailable(f"local store write failed: {e.strerror or e}") from e
            # The bytes were hashed as they were written and fsynced: re-reading them now would
            # only read the page cache back.  The wipe and `custody verify` re-hash the object.
            if dest.stat().st_size != size:
                raise StorageIntegrityError(f"object {key}: store holds {dest.stat().st_size} bytes, expected {size}")
            return StoredObject(key=key, size=size, sha256=sha256, checksum=sha256, existed=False)
        info = self.confirm(key, sha256, size)  # already there: prove it is these bytes
        return StoredObject(key=key, size=size, sha256=sha256, checksum=info.checksum or sha256, existed=True)

    def clean_partial(self, older_than: float = 300.0) -> int:
        """Remove temp files a killed writer left (`.tmp-*`, never linked into place): a live
        write touches its file continuously, so one untouched for `older_than` s is an orphan."""
        removed = 0
        cutoff = time.time() - older_than
        for tmp in self.root.rglob(".tmp-*"):
            try:
                if tmp.is_file() and not tmp.is_symlink() and tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to remove
        return removed

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None,
                  metadata: dict[str, str] | None = None) -> StoredObject:
        dest = self._path(key)
        existed = dest.exists()
        if not existed:
            self._write_atomic(dest, lambda fd: write_all(fd, memoryview(data)))
        digest = hashlib.sha256(data).hexdigest()
        return StoredObject(key=key, size=len(data), sha256=digest, checksum=digest, existed=existed)

    # ------------------------------------------------------------------ read
    def head(self, key: str) -> ObjectInfo | None:
        p = self._path(key)
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        lock = self._read_lock(key)
        until = datetime.fromisoformat(lock["retain_until"]) if lock.get("retain_until") else None
        # A media key names the SHA-256 the store proved before linking the object into place.
        return ObjectInfo(key=key, size=st.st_size, sha256=key_sha256(key), retain_until=until,
                          lock_mode=lock.get("mode"), legal_hold=bool(lock.get("legal_hold")))

    def confirm(self, key: str, sha256: str, size: int) -> ObjectInfo:
        """A file system has no server-side checksum: re-read and hash what was written."""
        p = self._path(key)
        try:
            st = p.stat()
        except FileNotFoundError as e:
            raise StorageIntegrityError(f"object {key} is missing from the local store") from e
        if st.st_size != size:
            raise StorageIntegrityError(f"object {key}: store holds {st.st_size} bytes, expected {size}")
        got = sha256_file(p)
        if got != sha256:
            raise StorageIntegrityError(f"object {key}: stored bytes hash to {got}, expected {sha256}")
        return ObjectInfo(key=key, size=size, sha256=sha256, checksum=got)

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None,
                   chunk: int = 1024 * 1024) -> Iterator[bytes]:
        p = self._path(key)
        with open(p, "rb") as f:
            f.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                data = f.read(chunk if remaining is None else min(chunk, remaining))
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data

    def presigned_url(self, key: str, seconds: int = 300) -> str | None:
        return None

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` in key order; temp files and the `_locks/` tree are not objects."""
        if prefix.startswith("_locks"):
            raise ValueError(f"prefix {prefix!r} is not a key prefix")
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root / base
        if not top.is_dir():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not (dirpath == str(self.root) and d == "_locks")]
            for f in filenames:
                if f.startswith(".tmp-"):
                    continue
                key = os.path.relpath(os.path.join(dirpath, f), self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    found.append(key)
        yield from sorted(found)

    # ------------------------------------------------------------------ retention
    def _read_lock(self, key: str) -> dict:
        try:
            return json.loads(self._lock_path(key).read_text())
        except FileNotFoundError:
            return {}

    def _write_lock(self, key: str, lock: dict) -> None:
        lp = self._lock_path(key)
        lp.parent.mkdir(parents=True, exist_ok=True)
        tmp = lp.with_name(lp.name + ".tmp")
        tmp.write_text(json.dumps(lock))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, lp)

    def set_retention(self, key: str, until: datetime, mode: str) -> None:
        lock = self._read_lock(key)
        cur = datetime.fromisoformat(lock["retain_until"]) if lock.get("retain_until") else None
        if cur and until < cur:
            raise ObjectLocked(f"object {key}: retain-until {cur.isoformat()} cannot be shortened")
        lock.update(retain_until=until.astimezone(timezone.utc).isoformat(), mode=mode)
        self._write_lock(key, lock)

    def set_legal_hold(self, key: str, on: bool) -> None:
        lock = self._read_lock(key)
        lock["legal_hold"] = on
        self._write_lock(key, lock)

    def delete(self, key: str) -> None:
        lock = self._read_lock(key)
        if lock.get("legal_hold"):
            raise ObjectLocked(f"object {key} is under legal hold")
        until = lock.get("retain_until")
        if until and datetime.fromisoformat(until) > datetime.now(timezone.utc):
            raise ObjectLocked(f"object {key} is retained until {until}")
        p = self._path(key)
        try:
            os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)
            p.unlink()
        except FileNotFoundError:
            pass
