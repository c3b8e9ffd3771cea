"""Technical metadata of real files, and files that do not play."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from indexer_support import add_media, ffmpeg

from catalog import jobs
from catalog.models import CustodyEvent, Derivative, Job, Media
from indexer.probe import parse_iso6709, probe_media
from indexer.worker import run_pending
from ingest.simulate import make_audio, make_photo, make_video

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")
UTC = timezone.utc


def indexed(app, mid: int) -> Media:  # noqa: ANN001
    with app.catalog.session() as s:
        return s.get(Media, mid)


def test_video_metadata(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    clip = make_video(tmp_path / "VID_20260501_100000.mp4", 2.0, rate=25, gop=25,
                      creation_time=datetime(2026, 5, 1, 2, 0, tzinfo=UTC), location="+30.2500+120.1667+010.000/",
                      extra=["-movflags", "use_metadata_tags", "-metadata", "make=SimPhone",
                             "-metadata", "model=MDT-8"])
    mid = add_media(app, clip, "video")
    assert run_pending(app, "w") == {"done": 1}
    m = indexed(app, mid)
    t = m.meta["technical"]
    assert (t["video_codec"], t["width"], t["height"], t["frame_rate"]) == ("h264", 320, 240, 25.0)
    assert (t["audio_codec"], t["audio_sample_rate"], t["audio_channels"]) == ("aac", 16000, 1)
    assert abs(t["duration_seconds"] - 2.0) < 0.1 and t["bit_rate"] > 0
    assert t["creation_time"].startswith("2026-05-01T02:00:00")
    assert t["gps"] == {"lat": 30.25, "lon": 120.1667, "alt": 10.0}
    assert t["tags"]["make"] == "SimPhone" and t["tags"]["model"] == "MDT-8"  # vendor tags kept
    assert (m.width, m.height) == (320, 240) and m.index_state == "done" and m.flags == []
    # The raw probe is kept whole: every stream and tag the device wrote.
    assert [s["codec_type"] for s in m.probe["streams"]] == ["video", "audio"]
    assert m.probe["format"]["tags"]["location"].startswith("+30.2500")


def test_rotated_phone_video_gives_upright_keyframes(make_app, tmp_path: Path) -> None:
    app = make_app()
    flat, clip = tmp_path / "flat.mp4", tmp_path / "rot.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
           str(flat))
    ffmpeg("-i", str(flat), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(clip))  # a phone held upright
    upright = tmp_path / "upright.png"
    ffmpeg("-i", str(clip), "-frames:v", "1", str(upright))  # ffmpeg applies the display matrix itself
    mid = add_media(app, clip, "video")
    run_pending(app, "w")
    m = indexed(app, mid)
    assert m.meta["technical"]["rotation"] in (90, -90)
    with app.catalog.session() as s:
        kf = s.query(Derivative).filter(Derivative.media_id == mid, Derivative.kind == "keyframe").first()
    img = cv2.imdecode(np.frombuffer(b"".join(app.store.iter_bytes(kf.storage_key)), np.uint8), cv2.IMREAD_COLOR)
    ref = cv2.imread(str(upright))
    assert img.shape == ref.shape == (320, 240, 3)  # portrait, as a player shows it
    assert np.abs(img.astype(int) - ref.astype(int)).mean() < 12  # and turned the same way (JPEG noise only)


@pytest.mark.parametrize("fmt,codec", [("wav", "pcm_s16le"), ("m4a", "aac"), ("adts", "aac")])
def test_audio_metadata(make_app, tmp_path: Path, fmt: str, codec: str) -> None:
    app = make_app()
    mid = add_media(app, make_audio(tmp_path / f"memo.{fmt}", 1.5, fmt=fmt), "audio")
    run_pending(app, "w")
    m = indexed(app, mid)
    assert m.meta["technical"]["audio_codec"] == codec and m.meta["technical"]["audio_sample_rate"] == 16000
    assert abs(m.duration_seconds - 1.5) < 0.2 and m.flags == []
    with app.catalog.session() as s:
        assert s.query(Derivative).filter(Derivative.media_id == mid).count() == 0


def test_photo_exif(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    photo = make_photo(tmp_path / "IMG_1.jpg", datetime(2026, 5, 1, 10, 0, 5), make="SimPhone", model="MDT-8",
                       serial="T300001", gps_utc=datetime(2026, 5, 1, 2, 0, 1, tzinfo=UTC), size=(400, 300))
    mid = add_media(app, photo, "photo")
    run_pending(app, "w")
    m = indexed(app, mid)
    t = m.meta["technical"]
    assert (t["make"], t["model"], t["serial"]) == ("SimPhone", "MDT-8", "T300001")
    assert t["datetime_original"] == "2026:05:01 10:00:05"
    assert t["gps"]["utc_text"] == "2026:05:01 02:00:01.000"
    assert abs(t["gps"]["lat"] - 30.25) < 1e-6 and abs(t["gps"]["lon"] - 120.1666667) < 1e-6
    assert (m.width, m.height) == (400, 300)
    assert m.probe["tool"] == "exifread" and m.probe["EXIF DateTimeOriginal"] == "2026:05:01 10:00:05"
    assert m.time_source == "exif"
    with app.catalog.session() as s:
        th = s.query(Derivative).filter(Derivative.media_id == mid).one()
    assert th.kind == "thumbnail" and th.width == 320


def _broken_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = make_video(tmp_path / "good.mp4", 2.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:4000])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video at all " * 200)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    photo = make_photo(tmp_path / "p.jpg", datetime(2026, 5, 1, 10, 0, 0), size=(640, 480))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo.read_bytes()[:600])
    wav = tmp_path / "noaudio.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return {"truncated": (truncated, "video"), "garbage": (garbage, "video"), "empty": (empty, "video"),
            "cut": (cut, "photo"), "wav": (wav, "audio")}


def test_unplayable_files_are_flagged_with_the_tools_reason(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    ids = {name: add_media(app, p, kind) for name, (p, kind) in _broken_files(tmp_path).items()}
    assert run_pending(app, "w") == {"done": len(ids)}  # indexing never crashes on them
    for name, mid in ids.items():
        m = indexed(app, mid)
        assert m.flags == ["unplayable"], name
        reason = m.flag_reasons["unplayable"]
        assert reason.startswith(("ffprobe:", "image cannot be decoded")), (name, reason)
        assert m.index_state == "done"
    assert "Invalid data" in indexed(app, ids["garbage"]).flag_reasons["unplayable"]
    with app.catalog.session() as s:
        assert {j.state for j in s.query(Job).filter(Job.kind.in_(jobs.INDEX_KINDS))} == {"done"}
        evs = s.query(CustodyEvent).filter(CustodyEvent.action == "indexed").all()
        assert {e.media_id for e in evs} == set(ids.values())
        assert all("unplayable" in e.detail for e in evs)


def test_flags_from_the_ingest_check_are_kept_and_joined(make_app, tmp_path: Path) -> None:
    app = make_app()
    ok = add_media(app, make_video(tmp_path / "ok.mp4", 1.0), "video")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"junk" * 100)
    broken = add_media(app, bad, "video")
    with app.catalog.session() as s:
        for mid in (ok, broken):
            m = s.get(Media, mid)
            m.flags = ["important", "unplayable"]
            m.flag_reasons = {"unplayable": "ffmpeg decode: end of file cut off"}
    run_pending(app, "w")
    m = indexed(app, ok)  # the header probes fine, but the ingest check decoded the tail: kept
    assert m.flags == ["important", "unplayable"]
    assert m.flag_reasons == {"unplayable": "ffmpeg decode: end of file cut off"}
    m = indexed(app, broken)
    assert m.flags == ["important", "unplayable"]
    assert m.flag_reasons["unplayable"].startswith("ffmpeg decode: end of file cut off; ffprobe: ")


def test_other_files_are_not_called_unplayable(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("case notes")
    res = probe_media(str(f), "other")
    assert res.unplayable is None and "note" in res.raw


def test_iso6709() -> None:
    assert parse_iso6709("+30.2500+120.1667/") == {"lat": 30.25, "lon": 120.1667}
    assert parse_iso6709("-33.8688+151.2093+005.5/") == {"lat": -33.8688, "lon": 151.2093, "alt": 5.5}
    assert parse_iso6709("nowhere") is None


def test_the_spool_copy_is_read_first_when_it_is_whole(make_app, tmp_path: Path) -> None:
    from indexer.source import open_source

    app = make_app()
    clip = make_video(tmp_path / "c.mp4", 1.0)
    mid = add_media(app, clip, "video")
    with app.catalog.session() as s:
        m = s.get(Media, mid)
        sha, size, key = m.sha256, m.size, m.storage_key
    spool = app.settings.path(app.settings.station.spool_dir) / "objects"
    spool.mkdir(parents=True)
    (spool / sha).write_bytes(clip.read_bytes()[:-10])  # still being written: not used
    with open_source(app.settings, app.store, sha, size, key) as src:
        assert src.via == "store"
    (spool / sha).write_bytes(clip.read_bytes())
    with open_source(app.settings, app.store, sha, size, key) as src:
        assert src.via == "spool" and src.location == str(spool / sha)
    run_pending(app, "w")
    assert indexed(app, mid).meta["keyframes"]["read_from"] == "spool"


def test_hostile_photo_is_unplayable_and_reasons_never_name_the_spool(tmp_path: Path) -> None:
    import io as _io

    from PIL import Image as _Image

    from indexer.probe import probe_av, probe_photo

    buf = _io.BytesIO()
    _Image.new("RGB", (16, 16)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = b"\xff\xff\xff\xff"
    bomb = tmp_path / "spoolish" / "0123abcd"
    bomb.parent.mkdir()
    bomb.write_bytes(bytes(data))
    r = probe_photo(str(bomb))
    assert r.unplayable and "decode" in r.unplayable and str(bomb) not in r.unplayable
    junk = tmp_path / "spoolish" / "4567ef"
    junk.write_bytes(b"not a video at all" * 100)
    r = probe_av(str(junk), "video")
    assert r.unplayable and str(junk) not in r.unplayable and "<recording>" in r.unplayable
