"""The spine end to end on real files: recognise, offload, store, catalog, verify, wipe;
every bad input gets a status and a reason; SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from catalog import custody_log
from catalog.models import CustodyEvent, DockSession, Job, Media, Sighting
from ingest.pipeline import ingest_volume
from ingest.simulate import SimDevice, build_volume
from catalog.audit import verify_all
from tests.helpers_ingest import by_name, media_count


def gat(tmp_path: Path, name: str = "cam", **kw) -> Path:
    dev = SimDevice(kind="gat947", serial="A100001", officer="310001", clips=1, photos=1, audio=0, seconds=1, **kw)
    return build_volume(tmp_path / "docks" / name, dev)


def test_three_devices_stored_catalogued_and_verified(make_app, catalog_url: str, tmp_path: Path,
                                                      ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=catalog_url)
    for kind, serial in (("gat947", "A100001"), ("dcim", "DC00001"), ("android", "MDT0001")):
        v = build_volume(tmp_path / "docks" / kind, SimDevice(kind=kind, serial=serial, clips=1, photos=1, audio=1,
                                                              seconds=1, clock_offset_s=420))
        res = ingest_volume(app, v)
        j = res.to_json()
        assert res.state == "complete", j
        assert j["device"]["serial"] == serial and j["session"] == res.session
        assert j["counts"]["stored"] == 3 and sum(j["counts"].values()) == 3, json.dumps(j)
        for f in j["files"]:
            assert len(f["sha256"]) == 64 and f["status"] == "stored" and f["size"] > 0
            assert f["sha256"] == hashlib.sha256((v / f["path"]).read_bytes()).hexdigest()
    with app.catalog.session() as s:
        media = s.execute(select(Media)).scalars().all()
        assert len(media) == 9
        for m in media:
            assert m.storage_key.endswith(m.sha256) and m.verified_at is not None
            # clock 7 minutes fast, measured at docking and corrected openly
            assert m.clock_offset_seconds is not None and abs(m.clock_offset_seconds - 420) < 5
            assert m.time_source == "filename" and m.device_start_text
            assert abs((m.device_start - m.recorded_start).total_seconds() - m.clock_offset_seconds) < 0.01
        assert s.execute(select(Job).where(Job.kind == "index")).scalars().all().__len__() == 9
        actions = [e.action for e in s.execute(select(CustodyEvent).order_by(CustodyEvent.seq)).scalars()]
        assert actions.count("docked") == 3 and actions.count("stored") == 9 and actions.count("verified") == 9
    rep = verify_all(app, actor="test")
    assert rep.ok and rep.objects_checked == 9, rep.problems


def test_same_bytes_stored_once_seen_twice(make_app, catalog_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=catalog_url)
    v = gat(tmp_path)
    first = ingest_volume(app, v)
    assert first.counts["stored"] == 2
    # The same clip copied under a second name on another device: stored once, seen twice.
    other = build_volume(tmp_path / "docks" / "other", SimDevice(kind="dcim", serial="DC9", clips=0, photos=0,
                                                                 audio=0))
    clip = next(p for p in v.rglob("*.MP4"))
    target = other / "DCIM" / "100MEDIA" / "20260101_080000_0001.MP4"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(clip.read_bytes())
    second = ingest_volume(app, other)
    f = by_name(second.to_json())["20260101_080000_0001.MP4"]
    assert f["status"] == "duplicate" and "already stored" in f["reason"]
    # Re-docking the first device: nothing new, nothing stored twice.
    again = ingest_volume(app, v)
    assert again.counts == {"stored": 0, "duplicate": 2, "flagged": 0, "refused": 0, "skipped": 0}
    assert media_count(app) == 2
    with app.catalog.session() as s:
        mid = s.execute(select(Media.id).where(Media.original_name == clip.name)).scalar_one()
        assert len(s.execute(select(Sighting).where(Sighting.media_id == mid)).scalars().all()) == 3


def test_bad_inputs_get_status_and_reason(make_app, catalog_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=catalog_url)
    v = gat(tmp_path)
    day = next((v / "DCIM").iterdir())
    good = next(day.glob("*.MP4"))
    data = good.read_bytes()
    (day / "A100001_310001_20260101080000_0101.MP4").write_bytes(data[: len(data) // 2])  # truncated
    (day / "A100001_310001_20260101080100_0102.MP4").write_bytes(b"this is not a video\n" * 50)  # fake
    (day / "A100001_310001_20260101080200_0103.MP4").write_bytes(b"")  # zero bytes
    secret = tmp_path / "outside-secret.MP4"
    secret.write_bytes(b"SECRET" * 100)
    (day / "A100001_310001_20260101080300_0104.MP4").symlink_to(secret)  # leaves the volume
    (day / "linkdir").symlink_to(tmp_path)  # a directory link is never walked
    os.mkfifo(day / "A100001_310001_20260101080400_0105.MP4")  # would block a naive reader forever
    hostile = ["执法记录_张三_现场检查.MP4", "..%2F..%2Fetc%2Fpasswd.MP4", "$(rm -rf ~);.MP4", "a\nb.MP4", "[bold]x.MP4"]
    for i, n in enumerate(hostile):
        (day / n).write_bytes(data + bytes([i]))
    res = ingest_volume(app, v)
    files = by_name(res.to_json())
    assert files["A100001_310001_20260101080000_0101.MP4"]["status"] == "flagged"
    assert files["A100001_310001_20260101080100_0102.MP4"]["status"] == "flagged"
    assert "ffprobe" in files["A100001_310001_20260101080100_0102.MP4"]["reason"]
    assert files["A100001_310001_20260101080200_0103.MP4"]["status"] == "flagged"
    assert files["A100001_310001_20260101080200_0103.MP4"]["reason"] == "zero-byte file"
    assert files["A100001_310001_20260101080300_0104.MP4"]["status"] == "refused"
    assert files["linkdir"]["status"] == "refused"
    assert files["A100001_310001_20260101080400_0105.MP4"]["status"] == "refused"
    for n in hostile:
        assert files[n]["status"] == "stored", files[n]
    with app.catalog.session() as s:
        media = {m.original_name: m for m in s.execute(select(Media)).scalars()}
        assert "unplayable" in media["A100001_310001_20260101080000_0101.MP4"].flags
        assert media["A100001_310001_20260101080200_0103.MP4"].flags == ["empty"]
        for n in hostile:
            assert media[n].original_name == n
            assert media[n].storage_key == f"media/sha256/{media[n].sha256[:2]}/{media[n].sha256[2:4]}/{media[n].sha256}"
        # the outside file was never read: its bytes are nowhere in the store
        secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
        assert secret_sha not in media
        assert s.execute(select(Media).where(Media.sha256 == secret_sha)).first() is None
    assert not any(p.name.endswith(secret_sha) for p in (tmp_path / "objects").rglob("*"))
    assert res.state == "complete"  # refused and flagged entries are decisions, not failures


def test_file_still_being_written_is_skipped_unwiped(make_app, sqlite_url: str, tmp_path: Path,
                                                     ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url, extra="")
    app.settings.station.file_stable_seconds = 0.3
    app.settings.station.file_busy_retries = 2
    app.settings.station.wipe_after_verify = True
    v = gat(tmp_path)
    growing = next((v / "DCIM").iterdir()) / "A100001_310001_20260101090000_0200.MP4"
    stop = threading.Event()

    def writer() -> None:
        with open(growing, "ab") as f:
            while not stop.is_set():
                f.write(os.urandom(4096))
                f.flush()
                time.sleep(0.02)

    growing.write_bytes(os.urandom(4096))
    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.1)
    try:
        res = ingest_volume(app, v)
    finally:
        stop.set()
        t.join()
    f = by_name(res.to_json())[growing.name]
    assert f["status"] == "skipped" and "still being written" in f["reason"]
    assert growing.exists()  # never wiped
    assert res.state == "incomplete" and not res.ok
    assert res.wiped == 2  # the two finished files were stored, verified and then wiped


def test_wipe_only_after_verified_store(make_app, catalog_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=catalog_url)
    v = gat(tmp_path)
    before = sorted(p.name for p in v.rglob("*.MP4")) + sorted(p.name for p in v.rglob("*.JPG"))
    res = ingest_volume(app, v, wipe=True)
    assert res.state == "complete" and res.wiped == 2
    assert not list(v.rglob("*.MP4")) and not list(v.rglob("*.JPG"))
    assert (v / "SYSTEM" / "DEVICE.INI").exists()  # only media is ever wiped
    with app.catalog.session() as s:
        wiped = s.execute(select(CustodyEvent).where(CustodyEvent.action == "wiped")).scalars().all()
        assert sorted(e.detail["device_path"].rsplit("/", 1)[-1] for e in wiped) == sorted(before)
        for e in wiped:
            # each wipe comes after the store and verify events of the same recording
            prior = s.execute(select(CustodyEvent.action).where(CustodyEvent.media_id == e.media_id,
                                                                CustodyEvent.seq < e.seq)).scalars().all()
            assert "stored" in prior and "verified" in prior
    assert verify_all(app, actor="t").ok


def test_unrecognised_volume_is_left_untouched(make_app, sqlite_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=sqlite_url)
    v = tmp_path / "docks" / "stick"
    v.mkdir(parents=True)
    (v / "clip.mp4").write_bytes(b"x" * 10)
    res = ingest_volume(app, v, wipe=True)
    assert res.state == "unrecognised" and "no device profile" in res.message
    assert (v / "clip.mp4").read_bytes() == b"x" * 10 and media_count(app) == 0
    with app.catalog.session() as s:
        ds = s.get(DockSession, res.session)
        assert ds.state == "unrecognised"


def test_device_pulled_mid_offload_then_redocked(make_app, catalog_url: str, tmp_path: Path,
                                                 ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=catalog_url)
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", clips=4, photos=0, audio=0, seconds=1))
    away = tmp_path / "pulled"
    calls = {"n": 0}

    def pull(event: str, data: dict) -> None:
        if event == "file":
            calls["n"] += 1
            if calls["n"] == 2:
                v.rename(away)  # the cable comes out after the second file

    res = ingest_volume(app, v, wipe=True, progress=pull)
    j = res.to_json()
    assert res.state == "incomplete" and "removed" in res.message
    assert j["counts"]["stored"] == 2 and j["counts"]["skipped"] == 2
    assert res.wiped == 0 and len(list(away.rglob("*.MP4"))) == 4  # nothing wiped on an interrupted dock
    with app.catalog.session() as s:  # the catalog says the same as the summary
        first = s.get(DockSession, res.session)
        assert first.counts["stored"] == 2 and first.counts["skipped"] == 2
        assert not s.execute(text("SELECT id FROM offload_items WHERE session_id = :s AND status IS NULL"),
                             {"s": res.session}).all()
    away.rename(v)
    again = ingest_volume(app, v)
    assert again.state == "complete"
    assert again.counts["stored"] == 2 and again.counts["duplicate"] == 2
    assert media_count(app) == 4
    with app.catalog.session() as s:
        first = s.get(DockSession, res.session)
        assert first.state == "resumed" and f"session {again.session}" in first.message


def test_spool_full_refuses_loudly_and_deletes_nothing(make_app, sqlite_url: str, tmp_path: Path,
                                                       ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    app.settings.station.min_free_spool_bytes = 1 << 60
    v = gat(tmp_path)
    res = ingest_volume(app, v, wipe=True)
    assert res.state == "incomplete" and "spool full" in res.message
    assert all(f["status"] == "skipped" for f in res.to_json()["files"])
    assert len(list(v.rglob("*.MP4"))) == 1 and media_count(app) == 0


def test_custody_log_edit_and_deletion_detected(make_app, catalog_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=catalog_url)
    ingest_volume(app, gat(tmp_path))
    with app.catalog.session() as s:
        assert custody_log.verify_chain(s).ok
    # The database itself refuses edits ...
    with pytest.raises(Exception, match="append-only"):
        with app.catalog.session() as s:
            s.execute(text("UPDATE custody_events SET actor = 'mallory' WHERE seq = 2"))
    # ... and an edit made around the guard is still detected by the chain.
    pg = app.catalog.dialect == "postgresql"
    with app.catalog.engine.begin() as c:
        c.execute(text("ALTER TABLE custody_events DISABLE TRIGGER ALL" if pg else
                       "DROP TRIGGER custody_events_no_update"))
        c.execute(text("UPDATE custody_events SET actor = 'mallory' WHERE seq = 2"))
    rep = verify_all(app, actor="t")
    assert not rep.ok and any("event 2" in p.message and "altered" in p.message for p in rep.problems)


def test_tampered_object_detected(make_app, sqlite_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    ingest_volume(app, gat(tmp_path))
    with app.catalog.session() as s:
        m = s.execute(select(Media).where(Media.kind == "video")).scalars().first()
    p = app.store.local_path(m.storage_key)
    os.chmod(p, 0o644)
    raw = bytearray(p.read_bytes())
    raw[100] ^= 0xFF  # one flipped bit on disk
    p.write_bytes(bytes(raw))
    rep = verify_all(app, actor="t")
    assert not rep.ok and rep.problems[0].media_id == m.id and "hashes to" in rep.problems[0].message


def test_sidecar_is_kept_with_its_recording(make_app, sqlite_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    clip = next(v.rglob("*.MP4"))
    clip.with_suffix(".TXT").write_text("案件编号 AJ-2026-00017\n", encoding="utf-8")
    res = ingest_volume(app, v)
    assert clip.with_suffix(".TXT").name not in by_name(res.to_json())  # a sidecar is not media
    with app.catalog.session() as s:
        m = s.execute(select(Media).where(Media.original_name == clip.name)).scalar_one()
        assert m.meta["sidecar"] == "案件编号 AJ-2026-00017\n"
        assert m.meta["sidecar_file"].endswith(".TXT")


def test_spool_copy_damaged_before_upload_is_copied_again(make_app, sqlite_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, ffmpeg_ok: None) -> None:
    from spool_damage import damage_then_redock

    app = make_app(catalog_url=sqlite_url)
    damage_then_redock(app, gat(tmp_path), lambda size: True, monkeypatch, tmp_path / "spool")
