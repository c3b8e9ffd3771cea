"""The player's byte source: HTTP range requests over the local store and over real S3."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from web.app import create_app
from web.streaming import ByteRange, RangeNotSatisfiable, parse_range
from web_support import events, login, sample_video, seed  # noqa: F401


def test_parse_range_forms() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == ByteRange(0, 9)
    assert parse_range("bytes=90-", 100) == ByteRange(90, 99)
    assert parse_range("bytes=-10", 100) == ByteRange(90, 99)
    assert parse_range("bytes=50-1000", 100) == ByteRange(50, 99)  # clamped to the end
    assert parse_range("bytes=0-1,5-6", 100) is None  # multi-range: whole object
    assert parse_range("items=0-1", 100) is None
    for bad in ("bytes=100-", "bytes=9-3", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 100)


def _check_ranges(app, sd) -> None:  # noqa: ANN001
    data = sd.video_bytes
    size = len(data)
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        url = f"/media/{sd.media_u1}/stream"
        full = client.get(url)
        assert full.status_code == 200 and full.content == data
        assert full.headers["accept-ranges"] == "bytes" and full.headers["content-type"] == "video/mp4"
        part = client.get(url, headers={"Range": "bytes=100-1123"})
        assert part.status_code == 206 and part.content == data[100:1124]
        assert part.headers["content-range"] == f"bytes 100-1123/{size}"
        assert part.headers["content-length"] == "1024"
        tail = client.get(url, headers={"Range": "bytes=-500"})
        assert tail.status_code == 206 and tail.content == data[-500:]
        open_end = client.get(url, headers={"Range": f"bytes={size - 10}-"})
        assert open_end.status_code == 206 and open_end.content == data[-10:]
        bad = client.get(url, headers={"Range": f"bytes={size}-"})
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
        dl = client.get(f"/media/{sd.media_u1}/download")
        assert dl.content == data and "attachment" in dl.headers["content-disposition"]
    streamed = events(app, action="streamed", media_id=sd.media_u1)
    ok = [(e.detail["start"], e.detail["end"]) for e in streamed if e.outcome == "ok"]
    assert ok == [(0, size - 1), (100, 1123), (size - 500, size - 1), (size - 10, size - 1)]
    assert streamed[-1].outcome == "refused" and streamed[-1].detail["range"] == f"bytes={size}-"
    assert streamed[-1].detail["reason"] == "range not satisfiable"
    assert all(e.actor == "rev" and e.remote_addr == "testclient" for e in streamed)
    assert events(app, action="downloaded", media_id=sd.media_u1)[-1].actor == "rev"


def test_ranges_from_local_store(make_app, catalog_url: str, sample_video) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url)
    _check_ranges(app, seed(app, sample_video))


@pytest.mark.s3
def test_ranges_proxied_from_s3(make_app, seaweed, s3_url: str, sample_video) -> None:  # noqa: ANN001
    app = make_app(storage_url=s3_url, endpoint=seaweed.endpoint)
    assert app.store.local_path("media/x") is None  # really the S3 store
    _check_ranges(app, seed(app, sample_video))


def test_seek_far_into_a_multi_gigabyte_original(make_app, sample_video) -> None:  # noqa: ANN001
    """A sparse 5 GiB object in the local store: a range near its end comes back at once."""
    from catalog.models import Media

    app = make_app()
    sd = seed(app, sample_video)
    size = 5 * 1024 ** 3
    key = "media/sha256/ab/cd/" + "abcd" * 16
    path = app.store.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size - 4096)
        f.write(b"END!" * 1024)
    with app.catalog.session() as s:
        s.add(Media(sha256="abcd" * 16, size=size, kind="video", storage_key=key, original_path="big.mp4",
                    original_name="big.mp4", unit_code="330100000001"))
    with app.catalog.session() as s:
        big = s.query(Media).filter_by(storage_key=key).one().id
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        r = client.get(f"/media/{big}/stream", headers={"Range": f"bytes={size - 8}-"})
        assert r.status_code == 206 and r.content == b"END!END!"
        assert r.headers["content-range"] == f"bytes {size - 8}-{size - 1}/{size}"
        r = client.get(f"/media/{big}/stream", headers={"Range": "bytes=3000000000-3000000009"})
        assert r.status_code == 206 and r.content == b"\0" * 10


def test_store_failures_are_error_pages_not_cut_streams(make_app, sample_video, tmp_path,  # noqa: ANN001
                                                         monkeypatch) -> None:  # noqa: ANN001
    from conftest import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "custody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "custody-secret")

    app = make_app()
    sd = seed(app, sample_video)
    from catalog.models import Media

    with app.catalog.session() as s:
        key = s.get(Media, sd.media_u2).storage_key
    path = app.store.local_path(key)
    path.chmod(0o600)
    path.unlink()  # the catalog names an object the disk no longer has
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        r = client.get(f"/media/{sd.media_u2}/stream", headers={"Range": "bytes=0-9"})
        assert r.status_code == 500 and "missing from the store" in r.text and str(path.parent) not in r.text
    # An S3 store that does not answer: 503 with the reason, never a 206 that stops after its headers.
    dead = make_app(catalog_url=f"sqlite:///{tmp_path / 'dead.db'}", storage_url="s3://custody-dead",
                    endpoint=f"http://127.0.0.1:{free_port()}")
    with dead.catalog.session() as s:
        m = Media(sha256="ef" * 32, size=100, kind="video", storage_key="media/sha256/ef/ef/" + "ef" * 32,
                  original_path="x.mp4", original_name="x.mp4")
        s.add(m)
        s.flush()
        dead_id = m.id
    from catalog.accounts import add_account

    with dead.catalog.session() as s:
        add_account(s, "rev9", "reviewer", password="correct horse 8", created_by="test")
    with TestClient(create_app(dead)) as client:
        login(client, "rev9")
        r = client.get(f"/media/{dead_id}/stream", headers={"Range": "bytes=0-9"})
        assert r.status_code == 503 and "does not answer" in r.text and "127.0.0.1" not in r.text
