"""The structure of ingest: the stage list runs in order over one task, each stage stays short,
and the station spool's layout and operations live in one object."""
from __future__ import annotations

import hashlib
import inspect
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog.models import DockSession, Job, Media, OffloadItem
from core.errors import SpoolFull
from ingest import pipeline, stages
from ingest.simulate import SimDevice, build_volume
from ingest.spool import ORPHAN_AGE_S, DeviceBusy, Spool
from ingest.states import ItemStatus, Phase, SessionState
from ingest.upload import add_copied_item, store_item

ORDER = ["recognise", "open_session", "refuse_and_skip", "offload", "store", "wipe", "finish"]


def traced(monkeypatch: pytest.MonkeyPatch, **replace) -> list[str]:  # noqa: ANN003
    """Run the stages (the real ones unless replaced by name), noting each one's name as it runs."""
    ran: list[str] = []

    def note(stage):  # noqa: ANN001, ANN202
        def run(task):  # noqa: ANN001, ANN202
            ran.append(stage.__name__)
            return replace.get(stage.__name__, stage)(task)
        return run
    monkeypatch.setattr(pipeline, "STAGES", tuple(note(s) for s in stages.STAGES))
    return ran


def test_the_stage_list_is_the_order_a_dock_runs_in(make_app, sqlite_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, ffmpeg_ok: None) -> None:
    assert [s.__name__ for s in stages.STAGES] == ORDER
    for stage in stages.STAGES:  # a newcomer reads each stage at a glance
        assert len(inspect.getsourcelines(stage)[0]) <= 40, stage.__name__
    app = make_app(catalog_url=sqlite_url)
    ran = traced(monkeypatch)
    cam = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", serial="A100001", clips=1, photos=1,
                                                             audio=0, seconds=1))
    res = pipeline.ingest_volume(app, cam, wipe=True)
    assert ran == ORDER and res.state == SessionState.COMPLETE == "complete", res.to_json()
    assert res.wiped == 2 and res.counts == {"stored": 2, "duplicate": 0, "flagged": 0, "refused": 0, "skipped": 0}
    with app.catalog.session() as s:
        assert s.get(DockSession, res.session).state == "complete"
        assert {it.phase for it in s.execute(select(OffloadItem)).scalars()} == {Phase.WIPED}

    # A stage that settles the result ends the task there: an unknown volume stops at recognise.
    ran.clear()
    stray = tmp_path / "docks" / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("not a recorder")
    res = pipeline.ingest_volume(app, stray)
    assert ran == ["recognise"] and res.state == "unrecognised" and res.session is not None


def test_a_fault_after_the_session_opens_closes_it_and_skips_the_rest(make_app, sqlite_url: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)

    def broken(task):  # noqa: ANN001, ANN202
        raise OSError("store stage fault")
    ran = traced(monkeypatch, store=broken)
    cam = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", serial="A100002", clips=1, photos=0,
                                                             audio=0, seconds=1))
    res = pipeline.ingest_volume(app, cam, wipe=True)
    assert ran == ORDER[:5] and res.state == "incomplete" and "store stage fault" in res.message
    assert res.wiped == 0 and next(cam.rglob("*.MP4")).exists()  # nothing wiped
    with app.catalog.session() as s:
        assert s.get(DockSession, res.session).state == "incomplete"  # never left "offloaded"


def test_spool_layout_lock_space_and_care(make_app, sqlite_url: str, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert (spool.tmp, spool.objects, spool.locks, spool.damaged) == tuple(
        tmp_path / "spool" / d for d in ("tmp", "objects", "locks", "damaged"))
    data = b"recording bytes"
    sha = hashlib.sha256(data).hexdigest()
    part = spool.new_tmp()
    part.write_bytes(data)
    assert spool.commit(part, sha) == spool.path(sha) == tmp_path / "spool" / "objects" / sha
    assert spool.path(sha).read_bytes() == data and not part.exists()

    with spool.lock("A100001"):
        with pytest.raises(DeviceBusy):
            with spool.lock("A100001"):
                pass
        with spool.lock("A100002"):  # another device is not held up
            pass
    with spool.lock("A100001"):  # released at the end of the block
        pass
    assert list(spool.locks.iterdir()) and not any("A100001" in p.name for p in spool.locks.iterdir())

    assert spool.free_bytes() > 0
    spool.check_space(1, 0)
    with pytest.raises(SpoolFull, match="nothing was deleted"):
        spool.check_space(1, spool.free_bytes() + 2**40)

    spool.new_tmp().write_bytes(b"half")
    assert spool.clean_tmp() == 1 and not list(spool.tmp.iterdir())
    kept = spool.set_aside(spool.path(sha))
    assert kept.parent == spool.damaged and kept.read_bytes() == data and not spool.path(sha).exists()

    # Cleaning: a copy waiting to be stored stays; an old orphan goes; a young one (maybe in flight) stays.
    app = make_app(catalog_url=sqlite_url)
    assert Spool.of(app.settings).root == tmp_path / "spool"
    names = {}
    for label in ("waiting", "old_orphan", "young_orphan"):
        body = label.encode()
        names[label] = hashlib.sha256(body).hexdigest()
        part = spool.new_tmp()
        part.write_bytes(body)
        spool.commit(part, names[label])
    old = time.time() - ORPHAN_AGE_S - 60
    os.utime(spool.path(names["old_orphan"]), (old, old))
    with app.catalog.session() as s:
        ds = DockSession(station=app.station, volume_path="test", state="complete")
        s.add(ds)
        s.flush()
        add_copied_item(s, session_id=ds.id, device_path="DCIM/waiting.MP4", sha256=names["waiting"], size=7)
    assert spool.clean(app.catalog) == 1
    assert sorted(p.name for p in spool.objects.iterdir()) == sorted([names["waiting"], names["young_orphan"]])


def test_a_file_arriving_by_another_route_is_stored_like_a_dock_copy(make_app, sqlite_url: str,
                                                                     tmp_path: Path, ffmpeg_ok: None) -> None:
    """What a field upload does: bytes into the spool, an item in phase copied, then store_item."""
    app = make_app(catalog_url=sqlite_url)
    spool = Spool.of(app.settings)
    data = os.urandom(4096)
    sha = hashlib.sha256(data).hexdigest()
    part = spool.new_tmp()
    part.write_bytes(data)
    spool.commit(part, sha)
    with app.catalog.session() as s:
        ds = DockSession(station=app.station, volume_path="field-upload:test", state="offloaded")
        s.add(ds)
        s.flush()
        item_id = add_copied_item(s, session_id=ds.id, device_path="note.bin", sha256=sha, size=len(data)).id
    out = store_item(app, item_id, None, "test")
    assert out.status in (ItemStatus.STORED, ItemStatus.FLAGGED) and out.media_id is not None
    with app.catalog.session() as s:
        m = s.get(Media, out.media_id)
        assert m.sha256 == sha and m.verified_at is not None and m.status == "stored"
        assert sorted(j.kind for j in s.execute(select(Job).where(Job.media_id == m.id)).scalars()) == \
            ["index", "retain"]
        assert s.get(OffloadItem, item_id).phase == Phase.STORED
    app.store.confirm(m.storage_key, sha, len(data))
