"""The one-read copy: a ring of buffers read once from the device, each hashed and written
to the spool (direct I/O where the file system takes it, else buffered): same bytes, same digest."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from core.errors import RefusedEntry
from ingest import offload
from ingest import volume as vol
from ingest.spool import Spool


def entry(p: Path) -> vol.Entry:
    st = os.lstat(p)
    return vol.Entry(p.name, os.fsencode(p), "file", st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("size", [3 * 1024 * 1024 + 12345, 4 * 64 * 1024, 100])  # unaligned tail, exact, tiny
def test_copy_and_hash_gives_the_bytes_and_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 direct: bool, size: int) -> None:
    src = tmp_path / "dev" / "clip.MP4"
    src.parent.mkdir()
    data = os.urandom(size)
    src.write_bytes(data)
    if not direct:
        monkeypatch.setattr(offload, "_O_DIRECT", 0)  # a platform or file system without direct I/O
    modes: list[bool] = []
    real = offload._SpoolWriter.__init__

    def spy(self: offload._SpoolWriter, fd: int) -> None:
        real(self, fd)
        modes.append(self.direct)
    monkeypatch.setattr(offload._SpoolWriter, "__init__", spy)
    seen: list[int] = []
    r = offload.copy_and_hash(entry(src), src.parent, Spool(tmp_path / "spool"), chunk=64 * 1024, progress=seen.append)
    assert r.sha256 == hashlib.sha256(data).hexdigest() and r.size == len(data) == sum(seen)
    assert modes == [direct]  # ext4 here takes direct I/O
    stored = Spool(tmp_path / "spool").path(r.sha256)
    assert stored.read_bytes() == data
    assert not list((tmp_path / "spool" / "tmp").iterdir())  # no temp left behind


def test_short_device_reads_and_a_refused_direct_write_lose_nothing(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """USB and FUSE devices return short reads; a file system may take O_DIRECT at open and
    refuse it at write.  Every byte still arrives once, in order."""
    src = tmp_path / "clip.MP4"
    data = os.urandom(1024 * 1024 + 777)
    src.write_bytes(data)
    real_readv, real_write = os.readv, os.write
    refused: list[int] = []

    def short_readv(fd: int, bufs: list[memoryview]) -> int:
        return real_readv(fd, [bufs[0][:5000]])  # never a whole buffer, never aligned

    def picky_write(fd: int, view: memoryview) -> int:
        import fcntl
        if fcntl.fcntl(fd, fcntl.F_GETFL) & offload._O_DIRECT and not refused:
            refused.append(fd)
            raise OSError(errno.EINVAL, "direct I/O refused")
        return real_write(fd, view)
    monkeypatch.setattr(os, "readv", short_readv)
    monkeypatch.setattr(os, "write", picky_write)
    r = offload.copy_and_hash(entry(src), tmp_path, Spool(tmp_path / "spool"), chunk=64 * 1024)
    assert refused, "the direct write was never tried"
    assert Spool(tmp_path / "spool").path(r.sha256).read_bytes() == data
    assert r.sha256 == hashlib.sha256(data).hexdigest()


def test_file_changed_during_copy_is_detected(tmp_path: Path) -> None:
    src = tmp_path / "clip.MP4"
    src.write_bytes(b"a" * 100_000)
    e = entry(src)
    with open(src, "ab") as f:  # grows between the listing and the copy
        f.write(b"b" * 1000)
    with pytest.raises(offload.FileChanged):
        offload.copy_and_hash(e, tmp_path, Spool(tmp_path / "spool"))


def test_swapped_for_a_link_after_listing_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "clip.MP4"
    src.write_bytes(b"a" * 10)
    e = entry(src)
    src.unlink()
    (tmp_path / "secret").write_bytes(b"s")
    src.symlink_to(tmp_path / "secret")
    with pytest.raises(RefusedEntry):
        offload.copy_and_hash(e, tmp_path, Spool(tmp_path / "spool"))
