"""Issue 17: a hostile container duration must not link across decades.

A real MP4 whose `mvhd` (timescale 1000) and `mdhd` duration fields are patched to 0xFFFFFFFF
claims 4,294,967 s (49.7 days).  Its interval is bounded by what is plausible (size and
bitrate, the name time and mtime, the dock), it is flagged, and it never auto-links."""
from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from indexer_support import add_device, add_dock_session, add_media

from catalog.models import Case, CaseOfficer, Media, MediaLink, Officer, ReviewItem
from indexer import timing
from indexer.worker import index_media
from ingest.simulate import make_video
from sqlalchemy import select

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")
UTC = timezone.utc
T = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # when the 2-second clip was really made
CLAIMED = 0xFFFFFFFF / 1000


def patch_duration(src: Path, dst: Path) -> Path:
    """Every mvhd gets timescale 1000 and duration 0xFFFFFFFF; every mdhd duration 0xFFFFFFFF."""
    data = bytearray(src.read_bytes())
    for box, timescale in ((b"mvhd", 1000), (b"mdhd", None)):
        i, n = 0, 0
        while (i := data.find(box, i)) >= 0:
            body = i + 4
            assert data[body] == 0, "version-0 boxes (32-bit fields)"
            if timescale:
                struct.pack_into(">I", data, body + 12, timescale)
            struct.pack_into(">I", data, body + 16, 0xFFFFFFFF)
            i, n = i + 4, n + 1
        assert n >= 1
    dst.write_bytes(bytes(data))
    return dst


def _case(app, case_no: str, start: datetime, officer_badge: str) -> None:  # noqa: ANN001
    with app.catalog.session() as s:
        off = s.execute(select(Officer).where(Officer.badge == officer_badge)).scalar_one()
        c = Case(case_no=case_no, kind="inspection", start=start, end=start + timedelta(hours=1))
        s.add(c)
        s.flush()
        s.add(CaseOfficer(case_id=c.id, officer_id=off.id))


def test_patched_duration_is_bounded_flagged_and_never_auto_linked(make_app, catalog_url: str,
                                                                  tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    real = make_video(tmp_path / "real.mp4", 2.0, size="160x120", rate=10, creation_time=T)
    hostile = patch_duration(real, tmp_path / "hostile.mp4")
    dev = add_device(app, "A100001", profile=None)
    ds = add_dock_session(app, dev, profile=None, offset=0.0, offset_source="identity clock vs station clock")
    mid = add_media(app, hostile, "video", original_path="DCIM/100/VID0001.MP4", device_id=dev, session_id=ds,
                    badge="310001", mtime=T + timedelta(seconds=2))
    # An inspection of the same officer 20 days later: inside the claimed 49.7-day interval
    # (the container's creation time T is the most trusted reading here; the interval ran from it).
    _case(app, "JC-2026-0901", T + timedelta(days=20), "310001")
    index_media(app, mid)
    with app.catalog.session() as s:
        m = s.get(Media, mid)
        assert not s.execute(select(MediaLink).where(MediaLink.media_id == mid, MediaLink.active.is_(True))).all()
        # The interval does not span weeks, and the start is not moved by the claim.
        assert (m.recorded_end - m.recorded_start).total_seconds() < 60
        assert abs((m.recorded_start - T).total_seconds()) < 60
        assert "duration_implausible" in m.flags
        assert "4294967 s" in m.flag_reasons["duration_implausible"]
        assert m.duration_seconds is None and m.meta["duration_claimed"] == pytest.approx(CLAIMED, abs=0.01)
        item = s.execute(select(ReviewItem).where(ReviewItem.media_id == mid)).scalar_one()
        assert "implausible duration" in item.reason
    # The true 2-second clip from the same device is timed and bounded as usual.
    rid = add_media(app, real, "video", original_path="DCIM/100/VID0002.MP4", device_id=dev, session_id=ds,
                    mtime=T + timedelta(seconds=2))
    index_media(app, rid)
    with app.catalog.session() as s:
        r = s.get(Media, rid)
        assert "duration_implausible" not in (r.flags or []) and r.duration_seconds == pytest.approx(2.0, 0.1)


def _media(**kw) -> Media:  # noqa: ANN003
    return Media(sha256="0" * 64, storage_key="k", **{"kind": "video", "size": 500_000_000, **kw})


def test_duration_bounds() -> None:
    name = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    assert timing.duration_doubt(_media(), 900.0, name) is None
    assert "longer than any" in timing.duration_doubt(_media(), 136 * 365 * 86400.0, None)
    assert "bit/s" in timing.duration_doubt(_media(size=40_000), 3600.0, None)
    closed = _media(original_mtime=name + timedelta(minutes=15, seconds=3))
    assert timing.duration_doubt(closed, 903.0, name) is None
    assert "closed 903 s after" in timing.duration_doubt(closed, 7200.0, name)
    docked = _media(docked_at=name + timedelta(hours=1))
    assert "after its device was docked" in timing.duration_doubt(docked, 20 * 3600.0, name, offset_seconds=5.0)
    assert timing.duration_doubt(docked, 20 * 3600.0, name) is None  # clock error unknown: a day allowed
    assert timing.duration_doubt(docked, 3000.0, name, offset_seconds=5.0) is None
    assert "not a length" in timing.duration_doubt(_media(), float("nan"), None)
