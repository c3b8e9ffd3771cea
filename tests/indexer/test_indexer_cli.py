"""`custody media list/show/keyframes`, `custody index --pending`, `custody reindex`."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import cv2
import pytest
from indexer_support import add_device, add_dock_session, add_media, add_user, run_cli

from catalog.models import CustodyEvent, Derivative, Job, Media
from ingest.simulate import make_video

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")
UTC = timezone.utc
NAME = "A100001_310001_20260501100000_0001.MP4"


@pytest.fixture
def indexed_app(make_app, catalog_url: str, tmp_path: Path):  # noqa: ANN201
    app = make_app(catalog_url=catalog_url)
    add_user(app, "admin", "administrator")
    add_user(app, "rev", "reviewer")
    add_user(app, "insp", "inspector")
    dev = add_device(app, "A100001")
    ds = add_dock_session(app, dev, offset=-2.0, offset_source="identity clock vs station clock")
    clip = make_video(tmp_path / NAME, 2.0, creation_time=datetime(2026, 5, 1, 2, 0, 1, tzinfo=UTC))
    app.mid = add_media(app, clip, "video", original_path=f"DCIM/20260501/{NAME}", device_id=dev, session_id=ds,
                        badge="310001")
    r = run_cli(app, "index", "--pending")
    assert r.exit_code == 0, r.output
    return app


def test_media_list_json(indexed_app) -> None:  # noqa: ANN001
    app = indexed_app
    r = run_cli(app, "media", "list", "--json", user="rev")
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.output)
    assert set(row) == {"id", "sha256", "size", "kind", "device", "officer", "recorded_at", "flags", "storage_key"}
    assert row["device"] == "A100001" and row["officer"] == "310001" and row["kind"] == "video"
    assert row["recorded_at"] == "2026-05-01T10:00:02+08:00"  # device ran 2 s slow; shown in UTC+08:00
    assert row["storage_key"].endswith(row["sha256"]) and row["flags"] == []
    r = run_cli(app, "media", "list", user="rev")
    # A table with headers, local times and sizes for people (issue 13).
    assert "A100001" in r.output and "2026-05-01 10:00:02" in r.output
    assert "设备/Device" in r.output and "大小/Size" in r.output and "local times (UTC+08:00)" in r.output
    from custody.commands.media import human_size

    assert human_size(row["size"]) in r.output
    assert (human_size(512), human_size(1536), human_size(180 * 1024 * 1024)) == ("512 B", "1.5 KiB", "180.0 MiB")


def test_media_show_json_and_the_view_is_logged(indexed_app) -> None:  # noqa: ANN001
    app = indexed_app
    r = run_cli(app, "media", "show", str(app.mid), "--json", user="rev")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["recorded_start"] == "2026-05-01T10:00:02+08:00"
    assert d["recorded_end"].startswith("2026-05-01T10:00:04")
    assert d["device_start"] == "2026-05-01T10:00:00+08:00"  # what the device's clock said
    assert d["device_start_text"] == "20260501100000"
    assert d["time_source"] == "filename" and d["clock_offset_seconds"] == -2.0
    assert d["clock_offset_source"] == "identity clock vs station clock"
    assert d["probe"]["format"]["format_name"].startswith("mov,mp4") and d["probe"]["streams"]
    assert d["keyframes"] and all(set(k) >= {"offset_seconds", "storage_key"} for k in d["keyframes"])
    assert d["keyframes"][0]["offset_seconds"] == 0.0 and d["contact_sheet"]
    assert d["metadata"]["video_codec"] == "h264"
    assert {"filename", "container"} <= set(d["time_readings"])
    with app.catalog.session() as s:
        ev = s.query(CustodyEvent).filter(CustodyEvent.action == "viewed").one()
    assert ev.actor == "rev" and ev.media_id == app.mid


def test_media_show_text(indexed_app) -> None:  # noqa: ANN001
    app = indexed_app
    r = run_cli(app, "media", "show", str(app.mid), user="rev")
    assert r.exit_code == 0, r.output
    for text in ("录像 Recording #", "开始 Start (corrected): 2026-05-01T10:00:02+08:00", "来源 source: filename",
                 "-2.000 s", "关键帧 Keyframes: 1"):
        assert text in r.output, text


def test_inspectors_are_refused_and_the_refusal_is_logged(indexed_app) -> None:  # noqa: ANN001
    app = indexed_app
    r = run_cli(app, "media", "show", str(app.mid), user="insp")
    assert r.exit_code == 4 and "may not view" in r.output
    r = run_cli(app, "index", "--pending", user="rev")
    assert r.exit_code == 4
    with app.catalog.session() as s:
        assert s.query(CustodyEvent).filter(CustodyEvent.action == "refused").count() == 2
        assert s.query(CustodyEvent).filter(CustodyEvent.action == "viewed").count() == 0


def test_unknown_media_is_a_clear_error(indexed_app) -> None:  # noqa: ANN001
    r = run_cli(indexed_app, "media", "show", "9999", user="rev")
    assert r.exit_code == 3 and "no recording with id 9999" in r.output


def test_keyframes_out(indexed_app, tmp_path: Path) -> None:  # noqa: ANN001
    app = indexed_app
    out = tmp_path / "kf"
    r = run_cli(app, "media", "keyframes", str(app.mid), "--out", str(out), user="rev")
    assert r.exit_code == 0, r.output
    [f] = sorted(out.glob("*.jpg"))
    assert f.name == f"media{app.mid}_kf01_000000000ms.jpg"
    assert cv2.imread(str(f)).shape == (240, 320, 3)
    with app.catalog.session() as s:
        ev = s.query(CustodyEvent).filter(CustodyEvent.action == "exported").one()
    assert ev.actor == "rev" and ev.detail["files"] == [f.name]


def test_index_pending_queues_recordings_that_lost_their_job(indexed_app, tmp_path: Path) -> None:  # noqa: ANN001
    app = indexed_app
    mid = add_media(app, make_video(tmp_path / "late.mp4", 1.0), "video", job=False)
    r = run_cli(app, "index", "--pending")
    assert r.exit_code == 0, r.output
    assert "Queued 1" in r.output and "done: 1" in r.output
    with app.catalog.session() as s:
        assert s.get(Media, mid).index_state == "done"
    r = run_cli(app, "index", "--pending")
    assert "Nothing to do" in r.output
    assert run_cli(app, "index").exit_code == 2


def test_reindex(indexed_app) -> None:  # noqa: ANN001
    app = indexed_app
    r = run_cli(app, "reindex", str(app.mid))  # without --force: already indexed, nothing redone
    assert r.exit_code == 0 and "done: 1" in r.output, r.output
    with app.catalog.session() as s:
        first = {d.id for d in s.query(Derivative).filter(Derivative.media_id == app.mid)}
        assert s.query(CustodyEvent).filter(CustodyEvent.action == "indexed").count() == 1  # already indexed
    r = run_cli(app, "reindex", "--force", str(app.mid))
    assert r.exit_code == 0, r.output
    assert "done: 1" in r.output
    with app.catalog.session() as s:
        rows = s.query(Derivative).filter(Derivative.media_id == app.mid).all()
        old = [d for d in rows if d.id in first]
        new = [d for d in rows if d.id not in first]
        assert old and all(d.purged_at is not None for d in old)  # superseded, never deleted
        assert new and all(d.purged_at is None for d in new)
        evs = s.query(CustodyEvent).filter(CustodyEvent.action == "indexed").order_by(CustodyEvent.seq).all()
        assert [e.detail["reindex"] for e in evs] == [False, True] and evs[-1].actor == "admin"
        assert s.query(Job).filter(Job.kind == "reindex", Job.state == "done").count() == 1
    r = run_cli(app, "reindex", "12345")
    assert r.exit_code == 3
