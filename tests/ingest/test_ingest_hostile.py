"""Volumes nobody planned for: every file is accounted for, nothing changed is wiped, one bad
file never stops the others, and nothing crashes the run."""
from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from catalog.models import DockSession, OffloadItem
from ingest import quickcheck
from ingest import volume as vol
from ingest.pipeline import ingest_volume
from ingest.simulate import SimDevice, build_volume
from ingest.upload import _corrected
from tests.helpers_ingest import by_name


def gat(tmp_path: Path, **kw) -> Path:
    return build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", serial="A100001", clips=1, photos=1,
                                                              audio=0, seconds=1, **kw))


def media_dir(v: Path) -> Path:
    return next(v.rglob("*.MP4")).parent


def test_folders_not_listed_are_reported_and_the_dock_is_not_complete(make_app, sqlite_url: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    deep = v / "DCIM"
    for i in range(vol.MAX_DEPTH + 2):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "A100001_310001_20260101080000_0009.MP4").write_bytes(next(v.rglob("*.MP4")).read_bytes())
    res = ingest_volume(app, v, wipe=True)
    j = res.to_json()
    assert res.state == "incomplete" and not res.ok, j
    skipped = [f for f in j["files"] if f["status"] == "skipped"]
    assert len(skipped) == 1 and "nested deeper than" in skipped[0]["reason"], j
    assert j["counts"]["stored"] == 2 and res.wiped == 2  # the rest went through
    assert (deep / "A100001_310001_20260101080000_0009.MP4").exists()
    # A volume too large to list is said to be so, never taken for complete.
    monkeypatch.setattr(vol, "MAX_ENTRIES", 3)
    again = ingest_volume(app, gat(tmp_path / "big"))
    assert again.state in ("incomplete", "unrecognised") and "listing stopped" in json_text(again.to_json())


def json_text(j: dict) -> str:
    import json
    return json.dumps(j, ensure_ascii=False)


def test_names_that_look_alike_stay_two_files(make_app, sqlite_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    d = media_dir(v)
    (d / "\\xff.MP4").write_bytes(os.urandom(5000))  # the four characters \ x f f
    with open(os.fsencode(d) + b"/\xff.MP4", "wb") as f:  # one raw byte 0xFF
        f.write(os.urandom(6000))
    res = ingest_volume(app, v)
    names = by_name(res.to_json())
    assert "\\\\xff.MP4" in names and "\\xff.MP4" in names, names
    assert names["\\\\xff.MP4"]["size"] == 5000 and names["\\xff.MP4"]["size"] == 6000


def test_future_timestamps_and_os_litter(make_app, sqlite_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    """A device clock far ahead stamps files in the future: they are stable, not 'being written'.
    macOS `._` files written when someone browsed the card are not recordings."""
    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    clip = next(v.rglob("*.MP4"))
    ahead = datetime.now(timezone.utc).timestamp() + 8 * 3600
    os.utime(clip, (ahead, ahead))
    (clip.parent / f"._{clip.name}").write_bytes(b"\x00\x05\x16\x07" + os.urandom(4000))
    res = ingest_volume(app, v)
    j = res.to_json()
    assert res.state == "complete", j
    assert by_name(j)[clip.name]["status"] == "stored"
    assert f"._{clip.name}" not in by_name(j)


def test_device_file_rewritten_in_place_is_not_wiped(make_app, sqlite_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, ffmpeg_ok: None) -> None:
    import ingest.stages as stages

    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    clip = next(v.rglob("*.MP4"))
    real = stages.wipe_session

    def rewrite_then_wipe(*a, **k):  # noqa: ANN002, ANN003, ANN202
        st = clip.stat()
        with open(clip, "r+b") as f:  # same size, same inode, time put back: only the bytes differ
            f.seek(100)
            f.write(b"tampered")
        os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
        return real(*a, **k)
    monkeypatch.setattr(stages, "wipe_session", rewrite_then_wipe)
    res = ingest_volume(app, v, wipe=True)
    assert res.wiped == 1 and clip.exists(), res.to_json()  # the photo went, the rewritten clip stayed
    assert res.state == "incomplete" and "changed on the device" in res.message
    assert "bytes changed" in by_name(res.to_json())[clip.name]["reason"]
    monkeypatch.setattr(stages, "wipe_session", real)
    # The next dock reads it again (name, size and time are not trusted) and captures the new bytes.
    again = ingest_volume(app, v)
    assert by_name(again.to_json())[clip.name]["status"] == "stored" and again.state == "complete", again.to_json()


def test_one_file_failing_to_store_does_not_stop_the_others(make_app, sqlite_url: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    real = quickcheck.check

    def explode(path: Path, kind: str, size: int) -> quickcheck.Check:
        if kind == "video":
            raise RuntimeError("decoder fault")
        return real(path, kind, size)
    monkeypatch.setattr(quickcheck, "check", explode)
    res = ingest_volume(app, v, wipe=True)
    j = res.to_json()
    assert res.state == "incomplete" and j["counts"]["stored"] == 1 and j["counts"]["skipped"] == 1, j
    assert res.wiped == 1 and next(v.rglob("*.MP4")).exists()
    with app.catalog.session() as s:
        assert s.get(DockSession, res.session).state == "incomplete"
        item = s.execute(select(OffloadItem).where(OffloadItem.phase == "copied")).scalar_one()
        assert "decoder fault" in item.last_error


def test_unexpected_failure_closes_the_session(make_app, sqlite_url: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, ffmpeg_ok: None) -> None:
    import ingest.stages as stages

    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    monkeypatch.setattr(stages, "find_sidecar", lambda *a: (_ for _ in ()).throw(MemoryError("boom")))
    res = ingest_volume(app, v)
    assert res.state == "incomplete" and "offload failed: MemoryError" in res.message
    assert all(f["status"] == "skipped" for f in res.to_json()["files"]) and res.to_json()["files"]
    with app.catalog.session() as s:
        assert s.get(DockSession, res.session).state == "incomplete"  # never left "offloading"


def test_hostile_photo_and_sidecar_are_data(make_app, sqlite_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc0")  # start of frame: height and width follow the precision byte
    data[i + 5:i + 9] = b"\xff\xff\xff\xff"
    bomb = tmp_path / "bomb.JPG"
    bomb.write_bytes(bytes(data))
    chk = quickcheck.check(bomb, "photo", len(data))
    assert not chk.ok and "image decode" in chk.reason and str(tmp_path) not in chk.reason

    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path / "vol")
    clip = next(v.rglob("*.MP4"))
    clip.with_suffix(".json").write_text("[" * 30000 + "]" * 30000)
    res = ingest_volume(app, v)
    assert res.state == "complete", res.to_json()


def test_time_correction_never_overflows() -> None:
    far = datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc)
    assert _corrected(far, -7200) is None
    assert _corrected(datetime(1, 1, 1, 8, tzinfo=timezone.utc), 3600) is None
    now = datetime(2026, 11, 28, 8, tzinfo=timezone.utc)
    assert _corrected(now, 420) == datetime(2026, 11, 28, 7, 53, tzinfo=timezone.utc)


def test_volume_that_looks_like_two_devices_loses_nothing(make_app, sqlite_url: str, tmp_path: Path,
                                                          ffmpeg_ok: None) -> None:
    """A terminal's identity folder copied onto a DCIM camera card: the camera's recordings are
    still found; a recording only the other profile would take is reported, not ignored."""
    app = make_app(catalog_url=sqlite_url)
    cam = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="dcim", serial="DC1", clips=2, photos=1, audio=0,
                                                             seconds=1))
    term = build_volume(tmp_path / "term", SimDevice(kind="android", serial="MDT1", clips=1, photos=0, audio=1,
                                                     seconds=1))
    ident = next(term.rglob("terminal.properties"))
    dest = cam / ident.relative_to(term)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(ident.read_bytes())
    res = ingest_volume(app, cam)
    j = res.to_json()
    assert j["device"]["profile"] == "dcim_camera" and j["counts"]["stored"] == 3, j
    assert res.state == "complete"
    # A terminal recording on it too: the camera profile does not take it, so it is reported.
    vid = next(term.rglob("REC_*.m4a"))
    (cam / vid.relative_to(term)).parent.mkdir(parents=True, exist_ok=True)
    (cam / vid.relative_to(term)).write_bytes(vid.read_bytes())
    again = ingest_volume(app, cam)
    skipped = [f for f in again.to_json()["files"] if f["status"] == "skipped"]
    assert again.state == "incomplete" and len(skipped) == 1 and "android" in skipped[0]["reason"], again.to_json()


def test_cli_names_only_real_accounts_and_reports_an_unreachable_catalog(tmp_path: Path, ffmpeg_ok: None) -> None:
    from tests.conftest import free_port, write_config
    from tests.helpers_ingest import run_cli

    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'objects'}")
    v = gat(tmp_path)
    ghost = run_cli(["--user", "ghost", "ingest", str(v), "--json", "--wipe"], cfg, tmp_path)
    assert ghost.returncode == 4 and "ghost" in ghost.stderr and not ghost.stdout.strip()
    assert len(list(v.rglob("*.MP4"))) == 1  # nothing was wiped by a name nobody holds
    assert run_cli(["--user", "ghost", "verify", "--json"], cfg, tmp_path).returncode == 4
    (tmp_path / "down").mkdir()
    down = write_config(tmp_path / "down", f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/x",
                        f"file://{tmp_path / 'objects'}")
    r = run_cli(["media", "list"], down, tmp_path)
    assert r.returncode == 5 and r.stderr.startswith("error: the catalog database is unreachable"), r.stderr
    assert "Traceback" not in r.stderr


def test_a_mount_inside_the_volume_is_never_crossed(make_app, sqlite_url: str, tmp_path: Path,
                                                    ffmpeg_ok: None) -> None:
    """A bind mount keeps the device number, so only the kernel's mount table reveals it: its
    files are not the device's (never offloaded, never wiped) and the dock is not complete."""
    import subprocess

    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "OTHER_0001.MP4").write_bytes(next(v.rglob("*.MP4")).read_bytes() + b"other")
    inside = media_dir(v) / "bind"
    inside.mkdir()
    if subprocess.run(["mount", "--bind", str(outside), str(inside)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        res = ingest_volume(app, v, wipe=True)
        j = res.to_json()
        assert res.state == "incomplete" and j["counts"]["stored"] == 2, j
        assert any(f["status"] == "skipped" and "mounted here" in f["reason"] for f in j["files"]), j
        assert (outside / "OTHER_0001.MP4").exists()
    finally:
        subprocess.run(["umount", str(inside)], check=True)


def test_a_real_recording_named_like_mac_litter_is_offloaded(make_app, sqlite_url: str, tmp_path: Path,
                                                              ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    clip = next(v.rglob("*.MP4"))
    clip.rename(clip.with_name(f"._{clip.name}"))  # a real MP4, not AppleDouble metadata
    res = ingest_volume(app, v)
    assert by_name(res.to_json())[f"._{clip.name}"]["status"] == "stored", res.to_json()


def test_a_still_image_named_as_video_is_flagged_at_ingest(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buf, "JPEG")
    fake = tmp_path / "A100001_310001_20261128230000_0008.MP4"
    fake.write_bytes(buf.getvalue() + b"\x00" * 5)
    chk = quickcheck.check(fake, "video", fake.stat().st_size)
    assert not chk.ok and "no duration" in chk.reason


def test_the_store_heals_and_late_docks_close(make_app, sqlite_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, ffmpeg_ok: None) -> None:
    from core.errors import StorageUnavailable
    from catalog.models import CustodyEvent, Media
    from ingest.upload import close_drained_sessions, upload_pending
    from catalog.audit import verify_all

    app = make_app(catalog_url=sqlite_url)
    v = gat(tmp_path)
    real_put = app.store.put_file

    def down(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise StorageUnavailable("store down for the test")
    monkeypatch.setattr(app.store, "put_file", down)
    first = ingest_volume(app, v)
    assert first.state == "incomplete"
    monkeypatch.setattr(app.store, "put_file", real_put)
    assert upload_pending(app, "t") == (2, None)
    assert close_drained_sessions(app, "t") == 1  # the dock is complete once its spool copies are stored
    with app.catalog.session() as s:
        assert s.get(DockSession, first.session).state == "complete"
        key = s.execute(select(Media.storage_key).where(Media.kind == "video")).scalar_one()
    # The store loses an object; the next dock brings the same bytes: the store is healed.
    obj = app.store.local_path(key)
    obj.unlink()
    assert not verify_all(app, actor="t").ok
    again = ingest_volume(app, v, wipe=True)
    assert again.state == "complete" and again.wiped == 2, again.to_json()
    assert verify_all(app, actor="t").ok
    with app.catalog.session() as s:
        assert s.execute(select(CustodyEvent).where(CustodyEvent.action == "restored")).scalar_one().media_id
    # A temp file a killed writer left in the store goes; a live one stays.
    old, new = app.store.root / "media" / ".tmp-old", app.store.root / "media" / ".tmp-new"
    old.write_bytes(b"partial")
    new.write_bytes(b"partial")
    os.utime(old, (1, 1))
    assert app.store.clean_partial() == 1 and not old.exists() and new.exists()


def test_spool_keeps_only_what_still_needs_it(make_app, sqlite_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, ffmpeg_ok: None) -> None:
    from core.errors import StorageUnavailable
    from indexer.worker import run_pending
    from ingest.spool import Spool

    def clean_spool(app) -> int:  # noqa: ANN001 - the uploader's clean-up pass
        return Spool.of(app.settings).clean(app.catalog)

    app = make_app(catalog_url=sqlite_url)
    ingest_volume(app, gat(tmp_path))
    spool = tmp_path / "spool" / "objects"
    assert len(list(spool.iterdir())) == 2
    assert clean_spool(app) == 0  # stored but not indexed yet: the indexer reads the spool copy
    run_pending(app, "test")
    assert clean_spool(app) == 2 and not list(spool.iterdir())
    # A copy still waiting for the store is never removed.
    monkeypatch.setattr(app.store, "put_file", lambda *a, **k: (_ for _ in ()).throw(StorageUnavailable("down")))
    ingest_volume(app, build_volume(tmp_path / "docks" / "b", SimDevice(kind="dcim", serial="DC2", clips=1,
                                                                         photos=0, audio=0, seconds=1)))
    assert clean_spool(app) == 0 and len(list(spool.iterdir())) == 1
