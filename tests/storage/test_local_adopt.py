"""Issue 14: the local store takes a proven spool copy itself (hard link, read-only, one write
per byte) when it is on the same file system, and copies it once when it is not."""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pytest

from core.errors import SourceMismatch
from storage.base import media_key
from storage.local import LocalStore, seal


def _spool_copy(d: Path, data: bytes) -> tuple[Path, str]:
    sha = hashlib.sha256(data).hexdigest()
    p = d / "spool" / "objects" / sha
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    assert seal(p, sha)  # as the spool seals its copies
    return p, sha


def test_proven_copy_is_linked_not_copied(tmp_path: Path) -> None:
    src, sha = _spool_copy(tmp_path, os.urandom(300_000))
    store = LocalStore(tmp_path / "store")
    obj = store.put_file(media_key(sha), src, sha, 300_000, proven=True)
    dest = store.local_path(media_key(sha))
    assert dest is not None and not obj.existed
    assert os.stat(dest).st_ino == os.stat(src).st_ino  # the same bytes on disk, written once
    assert not os.stat(dest).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # read-only
    src.unlink()  # the spool is cleaned: the object stays
    assert store.confirm(media_key(sha), sha, 300_000).checksum == sha
    assert not list((tmp_path / "store").rglob(".tmp-*"))


def test_unproven_put_still_copies(tmp_path: Path) -> None:
    src, sha = _spool_copy(tmp_path, b"x" * 5000)
    store = LocalStore(tmp_path / "store")
    store.put_file(media_key(sha), src, sha, 5000)
    assert os.stat(store.local_path(media_key(sha))).st_ino != os.stat(src).st_ino


def test_proven_copy_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    src, sha = _spool_copy(tmp_path, b"y" * 5000)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(SourceMismatch):
        store.put_file(media_key(sha), src, sha, 4999, proven=True)
    assert store.local_path(media_key(sha)) is None


def test_second_put_of_a_linked_object_confirms_it(tmp_path: Path) -> None:
    src, sha = _spool_copy(tmp_path, b"z" * 7000)
    store = LocalStore(tmp_path / "store")
    store.put_file(media_key(sha), src, sha, 7000, proven=True)
    again = store.put_file(media_key(sha), src, sha, 7000, proven=True)
    assert again.existed and again.checksum == sha


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm")
def test_store_on_another_file_system_copies_once(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        src, sha = _spool_copy(tmp_path, os.urandom(100_000))
        store = LocalStore(Path(other) / "store")
        store.put_file(media_key(sha), src, sha, 100_000, proven=True)
        dest = store.local_path(media_key(sha))
        assert dest is not None and os.stat(dest).st_ino != os.stat(src).st_ino
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha
        assert not os.stat(dest).st_mode & stat.S_IWUSR


def test_a_copy_written_to_after_the_seal_is_copied_and_refused(tmp_path: Path) -> None:
    """The seal (hash, size, a modification time no write gives) tells a touched copy without
    reading it: the store then copies and re-hashes, and refuses the changed bytes."""
    src, sha = _spool_copy(tmp_path, b"a" * 8000)
    with open(src, "r+b") as f:
        f.seek(4000)
        f.write(b"b")
    store = LocalStore(tmp_path / "store")
    with pytest.raises(SourceMismatch):
        store.put_file(media_key(sha), src, sha, 8000, proven=True)
    assert store.local_path(media_key(sha)) is None


def test_an_unsealed_copy_is_copied(tmp_path: Path) -> None:
    data = b"c" * 6000
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "plain"
    src.write_bytes(data)
    store = LocalStore(tmp_path / "store")
    store.put_file(media_key(sha), src, sha, 6000, proven=True)
    assert os.stat(store.local_path(media_key(sha))).st_ino != os.stat(src).st_ino
