"""One contract, two stores: the local directory (embedded default) and S3 (real SeaweedFS).

Every object store Custody writes evidence to must behave the same way to its callers.
"""
from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.errors import ObjectLocked, StorageIntegrityError
from core.settings import StorageSettings
from storage.base import media_key
from storage.local import LocalStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    from storage.s3 import S3Store

    seaweed = request.getfixturevalue("seaweed")
    url = request.getfixturevalue("s3_url")
    return S3Store(url, StorageSettings(url=url, endpoint_url=seaweed.endpoint,
                                        multipart_threshold_bytes=8 * 1024 * 1024,
                                        multipart_chunk_bytes=5 * 1024 * 1024))


def _file(tmp_path: Path, data: bytes, name: str = "f.bin") -> tuple[Path, str]:
    p = tmp_path / name
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024 + 7, 11 * 1024 * 1024])  # empty, tiny, single PUT, multipart
def test_put_head_confirm_and_read_back(store, tmp_path: Path, size: int) -> None:  # noqa: ANN001
    data = os.urandom(size)
    path, digest = _file(tmp_path, data)
    key = media_key(digest)
    stored = store.put_file(key, path, digest, size)
    assert stored.key == key and stored.size == size and stored.sha256 == digest and not stored.existed
    info = store.head(key)
    assert info is not None and info.size == size and info.sha256 == digest
    assert store.confirm(key, digest, size).size == size
    assert b"".join(store.iter_bytes(key)) == data
    if size > 10:
        assert b"".join(store.iter_bytes(key, 3, 9)) == data[3:10]  # HTTP range semantics: inclusive


def test_the_same_bytes_again_are_stored_once(store, tmp_path: Path) -> None:  # noqa: ANN001
    path, digest = _file(tmp_path, b"evidence " * 1000)
    key = media_key(digest)
    store.put_file(key, path, digest, path.stat().st_size)
    again = store.put_file(key, path, digest, path.stat().st_size)
    assert again.existed and again.sha256 == digest


def test_a_body_that_does_not_match_its_hash_is_refused_and_not_kept(store, tmp_path: Path) -> None:  # noqa: ANN001
    path, digest = _file(tmp_path, b"the device's bytes")
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(StorageIntegrityError):
        store.put_file(media_key(wrong), path, wrong, path.stat().st_size)
    assert store.head(media_key(wrong)) is None


def test_missing_objects_head_none(store) -> None:  # noqa: ANN001
    assert store.head(media_key("0" * 64)) is None


def test_a_locked_object_refuses_deletion_and_keeps_its_hold(store, tmp_path: Path) -> None:  # noqa: ANN001
    path, digest = _file(tmp_path, b"locked evidence")
    key = media_key(digest)
    store.put_file(key, path, digest, path.stat().st_size)
    until = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
    store.set_retention(key, until, "COMPLIANCE")
    assert store.head(key).retain_until >= until - timedelta(seconds=1)
    with pytest.raises(ObjectLocked):
        store.delete(key)
    store.set_legal_hold(key, True)
    assert store.head(key).legal_hold is True
    store.set_legal_hold(key, False)
    assert store.head(key).legal_hold is False
    assert b"".join(store.iter_bytes(key)) == b"locked evidence"


def test_keys_are_listed_by_prefix_in_order(store) -> None:  # noqa: ANN001
    for name in ("b", "a", "c"):
        store.put_bytes(f"contract-test/{name}.json", name.encode())
    store.put_bytes("elsewhere/x.json", b"x")
    assert list(store.list_keys("contract-test/")) == [f"contract-test/{n}.json" for n in "abc"]
