"""True recording time: reading sources in order of trust, clock offsets, corrections."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from indexer_support import add_device, add_dock_session, add_media, add_user, run_cli

from indexer import timing
from catalog.models import ClockCorrection, CustodyEvent, DockSession, Job, Media
from indexer import worker as indexer_worker
from indexer.worker import index_media, run_pending
from ingest.profiles import station_profiles
from ingest.simulate import make_audio, make_photo, make_video

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")

CST = timezone(timedelta(hours=8))
UTC = timezone.utc


def media(app, mid: int) -> Media:  # noqa: ANN001
    with app.catalog.session() as s:
        return s.get(Media, mid)


def events(app, action: str) -> list[CustodyEvent]:  # noqa: ANN001
    with app.catalog.session() as s:
        return list(s.query(CustodyEvent).filter(CustodyEvent.action == action).order_by(CustodyEvent.seq))


# --------------------------------------------------------------------------- pure readings
def test_container_time_written_as_local_is_reinterpreted_only_when_the_profile_says_so() -> None:
    summary = {"creation_time": "2026-05-01T10:00:00.000000Z"}
    honest = timing.container_reading(summary, CST, local_as_utc=False)
    buggy = timing.container_reading(summary, CST, local_as_utc=True)
    assert honest.device_time == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert buggy.device_time == datetime(2026, 5, 1, 2, 0, tzinfo=UTC)  # 10:00 wall time in +08:00
    assert buggy.text == honest.text == "2026-05-01T10:00:00.000000Z"  # the reading itself is kept as written
    assert "local" in buggy.note
    assert timing.container_reading({"creation_time": "1970-01-01T00:00:00Z"}, CST, False) is None


def test_exif_reading_uses_its_offset_else_the_device_zone() -> None:
    with_off = timing.exif_reading({"datetime_original": "2026:05:01 10:00:05", "offset_time_original": "+07:00"}, CST)
    without = timing.exif_reading({"datetime_original": "2026:05:01 10:00:05"}, CST)
    assert with_off.device_time == datetime(2026, 5, 1, 3, 0, 5, tzinfo=UTC)
    assert without.device_time == datetime(2026, 5, 1, 2, 0, 5, tzinfo=UTC)


def test_mtime_marks_the_end_of_a_recording() -> None:
    end = datetime(2026, 5, 1, 2, 15, tzinfo=UTC)
    r = timing.mtime_reading(end, 900.0, "video")
    assert r.device_time == datetime(2026, 5, 1, 2, 0, tzinfo=UTC) and r.text == end.isoformat()
    assert timing.mtime_reading(end, None, "photo").device_time == end


# --------------------------------------------------------------------------- indexing
def test_filename_time_wins_and_the_dock_offset_corrects_it(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    dev = add_device(app, "A100001")
    ds = add_dock_session(app, dev, offset=5.0, offset_source="identity clock vs station clock")
    name = "A100001_310001_20260501100000_0001.MP4"
    clip = make_video(tmp_path / name, 2.0, creation_time=datetime(2026, 5, 1, 1, 59, 58, tzinfo=UTC))
    mid = add_media(app, clip, "video", original_path=f"DCIM/20260501/{name}", device_id=dev, session_id=ds,
                    mtime=datetime(2026, 5, 1, 2, 0, 40, tzinfo=UTC))
    index_media(app, mid)
    m = media(app, mid)
    assert m.time_source == "filename"
    assert m.device_start_text == "20260501100000"
    assert m.device_start == datetime(2026, 5, 1, 2, 0, 0, tzinfo=UTC)  # the device clock's reading
    assert m.clock_offset_seconds == 5.0 and m.clock_offset_source == "identity clock vs station clock"
    assert m.recorded_start == datetime(2026, 5, 1, 1, 59, 55, tzinfo=UTC)  # device ran 5 s fast
    assert m.recorded_end == m.recorded_start + timedelta(seconds=m.duration_seconds)
    assert abs(m.duration_seconds - 2.0) < 0.1
    assert set(m.meta["time_readings"]) == {"filename", "container", "mtime"}  # every reading kept


def test_container_time_when_the_name_carries_none(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    clip = make_video(tmp_path / "clip.mp4", 2.0, creation_time=datetime(2026, 5, 1, 1, 0, 0, tzinfo=UTC))
    mid = add_media(app, clip, "video", mtime=datetime(2026, 5, 1, 1, 30, tzinfo=UTC))
    index_media(app, mid)
    m = media(app, mid)
    assert m.time_source == "container"
    assert m.recorded_start == datetime(2026, 5, 1, 1, 0, 0, tzinfo=UTC)
    assert m.clock_offset_seconds is None and m.clock_offset_source is None  # unknown, said so


def test_local_time_written_as_utc_firmware(make_app, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    app = make_app()
    shipped = station_profiles(app.settings)
    buggy = shipped[0].model_copy(update={"name": "buggy_fw", "container_time_is_local": True, "filename": None})
    monkeypatch.setattr(indexer_worker, "station_profiles", lambda settings: [*shipped, buggy])
    dev = add_device(app, "B200002", profile="buggy_fw")
    ds = add_dock_session(app, dev, profile="buggy_fw")
    # The firmware writes its +08:00 wall clock (10:00) tagged as UTC.
    clip = make_video(tmp_path / "REC0001.MP4", 2.0, creation_time=datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC))
    mid = add_media(app, clip, "video", device_id=dev, session_id=ds)
    index_media(app, mid)
    m = media(app, mid)
    assert m.time_source == "container"
    assert m.recorded_start == datetime(2026, 5, 1, 2, 0, 0, tzinfo=UTC)
    assert m.device_start_text.startswith("2026-05-01T10:00:00")
    assert "local" in m.meta["time_readings"]["container"]["note"]


def test_mtime_is_the_last_resort(make_app, tmp_path: Path) -> None:
    app = make_app()
    wav = make_audio(tmp_path / "memo.wav", 3.0)
    closed = datetime(2026, 5, 1, 3, 0, 3, tzinfo=UTC)
    mid = add_media(app, wav, "audio", mtime=closed)
    index_media(app, mid)
    m = media(app, mid)
    assert m.time_source == "mtime"
    assert abs((m.recorded_start - datetime(2026, 5, 1, 3, 0, 0, tzinfo=UTC)).total_seconds()) < 0.1
    assert abs((m.recorded_end - closed).total_seconds()) < 0.1


def test_offset_estimated_from_photo_gps_time_retimes_the_session(make_app, catalog_url: str,
                                                                  tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    dev = add_device(app, "T300003", profile="android_terminal")
    ds = add_dock_session(app, dev, profile="android_terminal")  # this identity file carried no clock
    clip = make_video(tmp_path / "VID_20260501_100000.mp4", 2.0)
    vid = add_media(app, clip, "video", original_path="DCIM/Camera/VID_20260501_100000.mp4",
                    device_id=dev, session_id=ds)
    assert run_pending(app, "w1") == {"done": 1}
    assert media(app, vid).recorded_start == datetime(2026, 5, 1, 2, 0, 0, tzinfo=UTC)  # uncorrected yet
    # The terminal's clock runs 90 s fast: EXIF says 10:01:30 local, GPS (true UTC) says 02:00:00.
    photo = make_photo(tmp_path / "IMG_20260501_100130.jpg", datetime(2026, 5, 1, 10, 1, 30),
                       gps_utc=datetime(2026, 5, 1, 2, 0, 0, tzinfo=UTC))
    pid = add_media(app, photo, "photo", original_path="DCIM/Camera/IMG_20260501_100130.jpg",
                    device_id=dev, session_id=ds)
    assert run_pending(app, "w1") == {"done": 2}  # the photo, then the retime job it queued
    with app.catalog.session() as s:
        d = s.get(DockSession, ds)
        assert d.clock_offset_seconds == 90.0 and d.clock_offset_source.startswith("photo_gps")
        assert s.query(Job).filter(Job.kind == "retime", Job.state == "done").count() == 1
    p, v = media(app, pid), media(app, vid)
    assert p.recorded_start == datetime(2026, 5, 1, 2, 0, 0, tzinfo=UTC)
    assert v.recorded_start == datetime(2026, 5, 1, 1, 58, 30, tzinfo=UTC)
    assert v.device_start_text == "20260501_100000"  # the reading is untouched
    assert v.clock_offset_source.startswith("photo_gps")
    assert [e.media_id for e in events(app, "retimed")] == [vid]
    assert events(app, "clock_estimated")[0].detail["offset_seconds"] == 90.0


def test_a_dock_reading_beats_a_photo_estimate(make_app, tmp_path: Path) -> None:
    app = make_app()
    dev = add_device(app, "T300004", profile="android_terminal")
    ds = add_dock_session(app, dev, profile="android_terminal", offset=2.0, offset_source="dock")
    photo = make_photo(tmp_path / "IMG_20260501_100130.jpg", datetime(2026, 5, 1, 10, 1, 30),
                       gps_utc=datetime(2026, 5, 1, 2, 0, 0, tzinfo=UTC))
    pid = add_media(app, photo, "photo", original_path="DCIM/Camera/IMG_20260501_100130.jpg",
                    device_id=dev, session_id=ds)
    index_media(app, pid)
    with app.catalog.session() as s:
        assert s.get(DockSession, ds).clock_offset_seconds == 2.0
    assert media(app, pid).clock_offset_seconds == 2.0


def test_administrator_correction_is_open_and_reversible(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    add_user(app, "admin", "administrator")
    add_user(app, "insp", "inspector")
    dev = add_device(app, "A100005")
    ds = add_dock_session(app, dev)
    ids = []
    for hhmmss, seconds in (("100000", 1.0), ("140000", 1.2)):  # different bytes, different recordings
        name = f"A100005_310001_20260501{hhmmss}_0001.MP4"
        clip = make_video(tmp_path / name, seconds, audio=False)
        ids.append(add_media(app, clip, "video", original_path=name, device_id=dev, session_id=ds))
    run_pending(app, "w1")
    before = [media(app, i).recorded_start for i in ids]

    r = run_cli(app, "clock", "correct", "A100005", "--from", "2026-05-01 09:00", "--to", "2026-05-01T12:00:00+08:00",
                "--offset", "-3600", "--reason", "battery ran flat; clock reset an hour behind", user="insp")
    assert r.exit_code == 4 and "may not" in r.output  # inspectors cannot correct clocks
    r = run_cli(app, "clock", "correct", "A100005", "--from", "2026-05-01 09:00", "--to", "2026-05-01T12:00:00+08:00",
                "--offset", "-3600", "--reason", "battery ran flat; clock reset an hour behind")
    assert r.exit_code == 0, r.output
    first, second = media(app, ids[0]), media(app, ids[1])
    assert first.recorded_start == before[0] + timedelta(hours=1)  # device was an hour slow
    assert first.device_start_text == "20260501100000"  # the device reading is never overwritten
    assert first.clock_offset_source.startswith("correction #")
    assert second.recorded_start == before[1]  # outside the range: untouched
    evs = events(app, "clock_corrected")
    assert [e.media_id for e in evs] == [None, ids[0]]
    assert evs[0].actor == "admin" and evs[0].detail["reason"].startswith("battery")
    assert evs[1].detail["before"]["recorded_start"] != evs[1].detail["after"]["recorded_start"]

    listed = json.loads(run_cli(app, "clock", "list", "--json").output)
    assert listed[0]["device"] == "A100005" and listed[0]["offset_seconds"] == -3600.0
    assert listed[0]["from"] == "2026-05-01T09:00:00+08:00"

    r = run_cli(app, "clock", "revoke", str(listed[0]["id"]), "--reason", "wrong device")
    assert r.exit_code == 0, r.output
    assert media(app, ids[0]).recorded_start == before[0]
    with app.catalog.session() as s:
        assert s.query(ClockCorrection).one().revoked_at is not None  # kept, marked revoked
    assert len(events(app, "clock_corrected")) == 4


def test_correction_applies_to_recordings_indexed_later(make_app, tmp_path: Path) -> None:
    app = make_app()
    add_user(app, "admin", "administrator")
    dev = add_device(app, "A100006")
    r = run_cli(app, "clock", "correct", "A100006", "--from", "2026-05-01 00:00", "--offset", "12.5",
                "--reason", "measured against the duty-room clock")
    assert r.exit_code == 0, r.output
    name = "A100006_310001_20260501100000_0001.MP4"
    mid = add_media(app, make_video(tmp_path / name, 1.0, audio=False), "video", original_path=name, device_id=dev)
    index_media(app, mid)
    assert media(app, mid).recorded_start == datetime(2026, 5, 1, 1, 59, 47, 500000, tzinfo=UTC)


def test_bad_corrections_are_refused(make_app) -> None:  # noqa: ANN001
    app = make_app()
    add_user(app, "admin", "administrator")
    add_device(app, "A100007")
    r = run_cli(app, "clock", "correct", "A100007", "--from", "2026-05-02", "--to", "2026-05-01", "--offset", "1",
                "--reason", "x")
    assert r.exit_code == 1 and "must be after" in r.output
    r = run_cli(app, "clock", "correct", "NOPE", "--from", "2026-05-01", "--offset", "1", "--reason", "x")
    assert r.exit_code == 3 and "no device" in r.output
    r = run_cli(app, "clock", "correct", "A100007", "--from", "yesterday", "--offset", "1", "--reason", "x")
    assert r.exit_code == 2
    with app.catalog.session() as s:
        assert s.query(ClockCorrection).count() == 0



# --------------------------------------------------------------------------- with the spine
@pytest.mark.parametrize("kind", ["gat947", "android"])
def test_docked_device_is_indexed_with_its_measured_clock_error(make_app, tmp_path: Path, kind: str) -> None:
    """Dock a simulated device whose clock runs 40 s fast, ingest it, index the queue."""
    from ingest.pipeline import ingest_volume
    from ingest.simulate import SimDevice, build_volume

    app = make_app()
    true_start = datetime(2026, 5, 1, 9, 30, 0, tzinfo=CST)
    dev = SimDevice(kind=kind, serial="A100009", start=true_start, clips=1, seconds=1.0, photos=1, audio=0,
                    clock_offset_s=40.0, write_clock=kind == "gat947")
    res = ingest_volume(app, build_volume(tmp_path / "vol", dev))
    assert res.state in ("complete", "offloaded"), res
    assert set(run_pending(app, "w")) == {"done"}  # the video, the photo (and a retime, by order)
    with app.catalog.session() as s:
        rows = {m.kind: m for m in s.query(Media)}
    video = rows["video"]
    assert video.time_source == "filename"
    assert video.device_start == (true_start + timedelta(seconds=40)).astimezone(UTC)  # the device's reading
    # Measured at the dock from the identity file's clock, or estimated from the photo's GPS time.
    assert video.clock_offset_source.startswith("identity" if kind == "gat947" else "photo_gps")
    assert abs(video.clock_offset_seconds - 40.0) < 3.0
    assert abs((video.recorded_start - true_start).total_seconds()) < 3.0


def test_clock_reset_after_recording_is_flagged_not_applied(make_app, tmp_path: Path, ffmpeg_ok: None) -> None:
    """The battery ran flat before docking: the dock reads 1970, but the clips were named while
    the clock was right.  Applying a 56-year offset would date them decades after their dock."""
    import re

    from ingest.pipeline import ingest_volume
    from ingest.simulate import SimDevice, build_volume

    app = make_app()
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", clips=1, photos=0, audio=0, seconds=1))
    ini = v / "SYSTEM" / "DEVICE.INI"
    ini.write_bytes(re.sub(rb"DevTime=[^\r\n]*", b"DevTime=1970-01-01 08:00:05", ini.read_bytes()))
    res = ingest_volume(app, v)
    assert res.state == "complete", res.to_json()
    mid = res.files[0].media_id
    index_media(app, mid)
    m = media(app, mid)
    assert "clock_suspect" in m.flags and "after its dock" in m.flag_reasons["clock_suspect"] and "not applied" in m.clock_offset_source
    assert m.clock_offset_seconds is None
    assert abs((m.recorded_start - m.device_start.astimezone(timezone.utc)).total_seconds()) < 1  # the device's reading
    assert m.recorded_start <= datetime.now(timezone.utc)
    with app.catalog.session() as s:
        assert s.get(DockSession, res.session).clock_offset_seconds < -1.5e9  # the measurement itself is kept


def test_a_clock_that_jumped_ahead_is_not_applied_backwards(make_app, tmp_path: Path, ffmpeg_ok: None) -> None:
    import re

    from ingest.pipeline import ingest_volume
    from ingest.simulate import SimDevice, build_volume

    app = make_app()
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", clips=1, photos=0, audio=0, seconds=1))
    ini = v / "SYSTEM" / "DEVICE.INI"
    ini.write_bytes(re.sub(rb"DevTime=[^\r\n]*", b"DevTime=2099-01-01 00:00:00", ini.read_bytes()))
    res = ingest_volume(app, v)
    mid = res.files[0].media_id
    index_media(app, mid)
    m = media(app, mid)
    assert "clock_suspect" in m.flags and m.clock_offset_seconds is None
    assert m.recorded_start.year >= 2026  # not 1954
