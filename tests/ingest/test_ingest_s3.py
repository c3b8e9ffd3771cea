"""Real SeaweedFS: stored objects carry the evidence hash and a store-confirmed SHA-256
checksum (single put and multipart); a storage outage keeps copies in the spool and the
upload resumes when the store returns."""
from __future__ import annotations

import base64
import json
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog.models import DockSession, Media, OffloadItem, Sighting
from ingest.pipeline import ingest_volume
from ingest.simulate import SimDevice, build_volume
from ingest.upload import upload_pending
from catalog.audit import verify_all
from storage.s3 import composite_checksum
from tests.helpers_ingest import by_name


def test_ingest_to_seaweedfs_with_checksums(make_app, catalog_url: str, seaweed, s3_url: str, tmp_path: Path,
                                            ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=catalog_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="dcim", serial="DC1", clips=1, photos=1, audio=1,
                                                           seconds=1))
    big = v / "DCIM" / "100MEDIA" / "20260102_101010_0009.MP4"
    big.write_bytes(next(v.rglob("*.MP4")).read_bytes() + bytes(range(256)) * 50_000)  # > multipart threshold
    res = ingest_volume(app, v)
    assert res.state == "complete", res.to_json()
    c = seaweed.client()
    bucket = s3_url[len("s3://"):]
    assert c.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    with app.catalog.session() as s:
        media = s.execute(select(Media)).scalars().all()
    assert len(media) == 4
    for m in media:
        head = c.head_object(Bucket=bucket, Key=m.storage_key, ChecksumMode="ENABLED")
        assert head["Metadata"]["sha256"] == m.sha256 and head["ContentLength"] == m.size
        assert head["ChecksumSHA256"] == m.storage_checksum
        if m.size <= app.settings.storage.multipart_threshold_bytes:
            assert m.storage_checksum == base64.b64encode(bytes.fromhex(m.sha256)).decode()
        else:
            part = app.store._part_size(m.size)  # type: ignore[attr-defined]
            raw = big.read_bytes()
            digests = [hashlib.sha256(raw[i:i + part]).digest() for i in range(0, len(raw), part)]
            assert m.storage_checksum == composite_checksum(digests) and m.storage_checksum.endswith(f"-{len(digests)}")
    rep = verify_all(app, actor="t")
    assert rep.ok and rep.objects_checked == 4


def test_storage_outage_keeps_spool_and_resumes(make_app, sqlite_url: str, seaweed, s3_url: str, tmp_path: Path,
                                                ffmpeg_ok: None) -> None:
    from tests.conftest import free_port

    down = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=f"http://127.0.0.1:{free_port()}")
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", clips=1, photos=1, audio=0, seconds=1))
    res = ingest_volume(down, v, wipe=True)
    j = res.to_json()
    assert res.state == "incomplete" and not res.ok
    assert all(f["status"] == "skipped" and "spool" in f["reason"] for f in j["files"]), j
    assert res.wiped == 0 and len(list(v.rglob("*.MP4"))) == 1
    spooled = list((tmp_path / "spool" / "objects").iterdir())
    assert len(spooled) == 2
    down.close()
    # The store comes back: the same station drains its spool without touching the device.
    up = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    n, outage = upload_pending(up, actor="station:test")
    assert (n, outage) == (2, None)
    with up.catalog.session() as s:
        items = s.execute(select(OffloadItem).where(OffloadItem.session_id == res.session)).scalars().all()
        assert {i.phase for i in items} == {"stored"} and {i.status for i in items} == {"stored"}
    # Re-docking now finds everything stored: duplicates, complete, safe to wipe.
    again = ingest_volume(up, v, wipe=True)
    assert again.state == "complete" and again.counts["duplicate"] == 2 and again.wiped == 2
    with up.catalog.session() as s:
        assert s.get(DockSession, res.session).state == "resumed"
    assert verify_all(up, actor="t").ok
    assert by_name(again.to_json())  # every file accounted for


def test_store_refuses_a_body_its_checksum_does_not_match(make_app, sqlite_url: str, seaweed, s3_url: str,
                                                          tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Data requests are not signed over the body (the signed x-amz-checksum-sha256 header is):
    the store itself must refuse bytes that differ from the checksum, single put and multipart."""
    import os

    from core.errors import StorageIntegrityError
    from storage import s3

    app = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(100_000))
    with pytest.raises(StorageIntegrityError):
        app.store.put_file("media/small", small, hashlib.sha256(b"other bytes").hexdigest(), 100_000)
    threshold = app.settings.storage.multipart_threshold_bytes
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(threshold + 4096))
    real_hash_parts = s3.hash_parts

    def wrong_part_digests(path, part_size, on_part, chunk=8 * 1024 * 1024):  # noqa: ANN001, ANN202
        real_hash_parts(path, part_size, lambda i, d: on_part(i, hashlib.sha256(b"not this part").digest()), chunk)
        return hashlib.sha256(big.read_bytes()).hexdigest()  # the whole file itself is fine
    monkeypatch.setattr(s3, "hash_parts", wrong_part_digests)
    with pytest.raises(StorageIntegrityError):
        app.store.put_file("media/big", big, hashlib.sha256(big.read_bytes()).hexdigest(), big.stat().st_size)
    assert app.store.head("media/small") is None and app.store.head("media/big") is None


@pytest.mark.parametrize("multipart", [False, True])
def test_spool_copy_damaged_before_upload_never_reaches_s3(make_app, sqlite_url: str, seaweed, s3_url: str,
                                                           tmp_path: Path, monkeypatch, multipart: bool,
                                                           ffmpeg_ok: None) -> None:  # noqa: ANN001
    """Single put: the store refuses the body (its checksum is the device's hash).  Multipart:
    the part checksums would match the damaged copy, so the station proves the whole file
    against the device's hash before completing the upload."""
    from spool_damage import damage_then_redock

    app = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="dcim", serial="DC9", clips=1, photos=1, audio=0,
                                                           seconds=1))
    big = v / "DCIM" / "100MEDIA" / "20260102_101010_0009.MP4"
    big.write_bytes(next(v.rglob("*.MP4")).read_bytes() + bytes(range(256)) * 50_000)  # > multipart threshold
    threshold = app.settings.storage.multipart_threshold_bytes
    pick = (lambda size: size > threshold) if multipart else (lambda size: size <= threshold)
    damage_then_redock(app, v, pick, monkeypatch, tmp_path / "spool")


def test_redock_after_outage_reports_what_became_of_the_spooled_copies(make_app, sqlite_url: str, seaweed,
                                                                      s3_url: str, tmp_path: Path,
                                                                      ffmpeg_ok: None) -> None:
    from tests.conftest import free_port

    down = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=f"http://127.0.0.1:{free_port()}")
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", clips=1, photos=1, audio=0, seconds=1))
    assert ingest_volume(down, v).state == "incomplete"
    down.close()
    up = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    again = ingest_volume(up, v)  # the store is back: this dock drains the spool itself
    j = again.to_json()
    assert again.state == "complete" and j["counts"]["duplicate"] == 2, json.dumps(j)
    assert all("stored from the copy an earlier dock left" in f["reason"] for f in j["files"]), j
    with up.catalog.session() as s:
        assert len(s.execute(select(Sighting).where(Sighting.session_id == again.session)).all()) == 2
    assert verify_all(up, actor="t").ok
