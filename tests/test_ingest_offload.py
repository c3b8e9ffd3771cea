"""The one-read copy: in-kernel copy with the hash over what landed, or the buffer ring when
the kernel cannot copy between the file systems; both give the same bytes and digest."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from custody.errors import RefusedEntry
from ingest import offload
from ingest import volume as vol


def entry(p: Path) -> vol.Entry:
    st = os.lstat(p)
    return vol.Entry(p.name, os.fsencode(p), "file", st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


@pytest.mark.parametrize("kernel", [True, False])
def test_copy_and_hash_paths_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool) -> None:
    src = tmp_path / "dev" / "clip.MP4"
    src.parent.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 12345)  # not a multiple of any chunk
    src.write_bytes(data)
    if not kernel:
        def no_kernel_copy(*a: object, **k: object) -> int:
            raise OSError(errno.EXDEV, "cross-device")
        monkeypatch.setattr(os, "copy_file_range", no_kernel_copy)
    seen: list[int] = []
    r = offload.copy_and_hash(entry(src), src.parent, tmp_path / "spool", chunk=64 * 1024, progress=seen.append)
    assert r.sha256 == hashlib.sha256(data).hexdigest() and r.size == len(data) == sum(seen)
    stored = offload.spool_path(tmp_path / "spool", r.sha256)
    assert stored.read_bytes() == data
    assert not list((tmp_path / "spool" / "tmp").iterdir())  # no temp left behind


def test_file_changed_during_copy_is_detected(tmp_path: Path) -> None:
    src = tmp_path / "clip.MP4"
    src.write_bytes(b"a" * 100_000)
    e = entry(src)
    with open(src, "ab") as f:  # grows between the listing and the copy
        f.write(b"b" * 1000)
    with pytest.raises(offload.FileChanged):
        offload.copy_and_hash(e, tmp_path, tmp_path / "spool")


def test_swapped_for_a_link_after_listing_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "clip.MP4"
    src.write_bytes(b"a" * 10)
    e = entry(src)
    src.unlink()
    (tmp_path / "secret").write_bytes(b"s")
    src.symlink_to(tmp_path / "secret")
    with pytest.raises(RefusedEntry):
        offload.copy_and_hash(e, tmp_path, tmp_path / "spool")
