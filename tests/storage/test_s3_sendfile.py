"""Issue 14: a single PUT to a plain-HTTP S3 endpoint sends the file with sendfile (the request
botocore signed, unchanged); the store still checks the SHA-256 it carries, and anything else
(HTTPS, a body that is not a file) goes the ordinary way."""
from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path

import pytest

from core.errors import StorageIntegrityError
from core.settings import StorageSettings
from storage import s3 as s3mod
from storage.base import media_key
from storage.s3 import S3Store


@pytest.fixture
def store(seaweed) -> S3Store:  # noqa: ANN001
    url = f"s3://custody-{uuid.uuid4().hex[:12]}"
    return S3Store(url, StorageSettings(url=url, endpoint_url=seaweed.endpoint))


def _file(tmp_path: Path, size: int) -> tuple[Path, str]:
    p = tmp_path / f"f{size}"
    p.write_bytes(os.urandom(size))
    return p, hashlib.sha256(p.read_bytes()).hexdigest()


def test_single_put_goes_by_sendfile_and_reads_back(store: S3Store, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []
    real = s3mod._sendfile_put

    def counting(request, **kw):  # noqa: ANN001, ANN202, ANN003
        r = real(request, **kw)
        if r is not None:
            sent.append(r.status_code)
        return r

    store.data_client.meta.events.unregister("before-send.s3.PutObject", s3mod._sendfile_put)
    store.data_client.meta.events.register("before-send.s3.PutObject", counting)
    for size in (0, 1, 3 * 1024 * 1024 + 7):
        p, sha = _file(tmp_path, size)
        obj = store.put_file(media_key(sha), p, sha, size)
        assert store.confirm(media_key(sha), sha, size).sha256 == sha
        assert b"".join(store.iter_bytes(media_key(sha))) == p.read_bytes()
        assert obj.size == size
    assert sent == [200, 200, 200]


def test_the_store_still_refuses_bytes_that_are_not_the_evidence(store: S3Store, tmp_path: Path) -> None:
    p, sha = _file(tmp_path, 200_000)
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(StorageIntegrityError):
        store.put_file(media_key(wrong), p, wrong, 200_000)
    assert store.head(media_key(wrong)) is None


def test_other_bodies_and_https_are_left_to_botocore() -> None:
    class Req:
        def __init__(self, url: str, body: object) -> None:
            self.url, self.body, self.method, self.headers = url, body, "PUT", {"Content-Length": "3"}

    assert s3mod._sendfile_put(Req("http://127.0.0.1:1/b/k", b"abc")) is None
    assert s3mod._sendfile_put(Req("http://127.0.0.1:1/b/k", io.BytesIO(b"abc"))) is None
    with open(__file__, "rb") as f:
        assert s3mod._sendfile_put(Req("https://127.0.0.1:1/b/k", f)) is None
