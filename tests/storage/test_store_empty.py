"""A zero-byte recording is evidence like any other (issue 13): `custody verify`, the case export,
the player stream and the indexer all read it, on the local store and on a real S3 server
(SeaweedFS), with SQLite and PostgreSQL catalogs.

S3 refuses a ranged GET of an empty object (`InvalidRange` for "bytes=0-"), which used to make
`custody verify` report the object unreadable and the export stop.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from catalog import custody_log
from catalog.accounts import add_account, resolve_actor
from catalog.audit import verify_all
from catalog.models import Case, Media, MediaLink, Unit
from indexer.worker import index_media
from storage.base import media_key
from web.app import create_app
from web.export import export_case
from web_support import PASSWORD, login

EMPTY_SHA = hashlib.sha256(b"").hexdigest()
CASE_NO = "(津东)应急检〔2026〕0001号"
CST = timezone(timedelta(hours=8))


@pytest.fixture(params=["local", "s3"])
def app(request: pytest.FixtureRequest, make_app, catalog_url: str):  # noqa: ANN001, ANN201
    if request.param == "s3":
        seaweed = request.getfixturevalue("seaweed")
        a = make_app(catalog_url=catalog_url, storage_url=request.getfixturevalue("s3_url"),
                     endpoint=seaweed.endpoint)
    else:
        a = make_app(catalog_url=catalog_url)
    stored = a.store.put_bytes(media_key(EMPTY_SHA), b"", content_type="video/mp4")
    t0 = datetime(2026, 3, 12, 9, 30, tzinfo=CST)
    with a.catalog.session() as s:
        unit = Unit(code="120102000000", name="河东区应急管理局")
        s.add(unit)
        s.flush()
        case = Case(case_no=CASE_NO, unit_id=unit.id, start=t0, end=t0 + timedelta(hours=1))
        m = Media(sha256=EMPTY_SHA, size=0, kind="video", storage_key=stored.key, storage_checksum=stored.checksum,
                  original_path="DCIM/100/EMPTY.MP4", original_name="EMPTY.MP4", recorded_start=t0,
                  flags=["empty"], flag_reasons={"empty": "zero-byte file"}, unit_code=unit.code)
        s.add_all([case, m])
        s.flush()
        s.add(MediaLink(media_id=m.id, case_id=case.id, method="manual", reason="test"))
        custody_log.record(s, "stored", actor="system", media_id=m.id, subject=stored.key,
                           detail={"sha256": EMPTY_SHA, "size": 0})
        add_account(s, "admin", "administrator", password=PASSWORD, created_by="test")
    return a


def media_id(app) -> int:  # noqa: ANN001
    with app.catalog.session() as s:
        return s.query(Media.id).filter(Media.sha256 == EMPTY_SHA).scalar()


def test_the_store_reads_an_empty_object(app) -> None:  # noqa: ANN001
    key = media_key(EMPTY_SHA)
    assert b"".join(app.store.iter_bytes(key)) == b""
    assert b"".join(app.store.iter_bytes(key, 0, None)) == b""
    assert b"".join(app.store.iter_bytes(key, 0, 10)) == b""  # a range past the end: nothing, like a file


def test_verify_reads_an_empty_recording(app) -> None:  # noqa: ANN001
    rep = verify_all(app, actor="admin")
    assert [p.message for p in rep.problems if p.kind == "object"] == []
    assert rep.objects_checked == 1 and rep.bytes_read == 0


def test_export_carries_an_empty_recording(app, tmp_path: Path) -> None:  # noqa: ANN001
    with app.catalog.session() as s:
        actor = resolve_actor(s, "admin")
    res = export_case(app, actor, CASE_NO, tmp_path / "bag")
    assert res.recordings == 1 and res.payload_bytes == 0
    payload = [p for p in (res.bag_dir / "data").rglob("*") if p.is_file() and p.suffix.lower() == ".mp4"]
    assert len(payload) == 1 and payload[0].stat().st_size == 0
    manifest = (res.bag_dir / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert EMPTY_SHA in manifest


def test_stream_and_download_of_an_empty_recording(app) -> None:  # noqa: ANN001
    mid = media_id(app)
    with TestClient(create_app(app)) as client:
        login(client, "admin")
        whole = client.get(f"/media/{mid}/stream")
        assert whole.status_code == 200 and whole.content == b""
        ranged = client.get(f"/media/{mid}/stream", headers={"Range": "bytes=0-"})
        assert ranged.status_code == 416 and ranged.headers["content-range"] == "bytes */0"
        down = client.get(f"/media/{mid}/download")
        assert down.status_code == 200 and down.content == b""


def test_indexer_flags_an_empty_recording_instead_of_failing(app) -> None:  # noqa: ANN001
    mid = media_id(app)
    out = index_media(app, mid)
    assert out.state == "indexed"
    with app.catalog.session() as s:
        m = s.get(Media, mid)
        assert m.index_state == "done" and "unplayable" in m.flags
        reason = json.dumps(m.flag_reasons, ensure_ascii=False)
        # The prober read an empty file; no HTTP range error stands in for the reason.
        assert "416" not in reason and "Range" not in reason
