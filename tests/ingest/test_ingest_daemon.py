"""The daemon as a real process: docked volumes are offloaded concurrently, a broken one
does not block the others, and SIGKILL at any moment loses, duplicates and wipes nothing."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog.app import App
from core.settings import load_settings
from catalog.models import CustodyEvent, DockSession, Media
from ingest.simulate import SimDevice, build_volume
from catalog.audit import verify_all
from tests.conftest import ROOT, write_config

EXTRA = "[indexer]\nworkers = 0\n"


def start_daemon(cfg: Path, home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CUSTODY_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "custody.cli", "--config", str(cfg), "daemon", *args],
                            cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def events(app: App, action: str) -> int:
    with app.catalog.session() as s:
        return s.execute(select(func.count(CustodyEvent.id)).where(CustodyEvent.action == action)).scalar_one()


def wait_for(pred, timeout: float = 120, poll: float = 0.05) -> None:  # noqa: ANN001
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


def test_daemon_offloads_docked_devices_and_survives_a_broken_one(tmp_path: Path, sqlite_url: str,
                                                                  ffmpeg_ok: None) -> None:
    cfg = write_config(tmp_path, sqlite_url, f"file://{tmp_path / 'objects'}", extra=EXTRA)
    docks = tmp_path / "docks"
    build_volume(docks / "cam1", SimDevice(kind="gat947", serial="A000001", clips=1, photos=1, audio=0, seconds=1))
    build_volume(docks / "term1", SimDevice(kind="android", serial="MDT0001", clips=1, photos=1, audio=0, seconds=1))
    (docks / "mystery").mkdir()
    (docks / "mystery" / "x.bin").write_bytes(b"?")
    p = start_daemon(cfg, tmp_path, "--exit-when-idle")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 1, out  # one volume was unrecognised: the run says so
    assert "unrecognised" in out or "no device profile" in out
    app = App(load_settings(cfg))
    with app.catalog.session() as s:
        states = sorted(d.state for d in s.execute(select(DockSession)).scalars())
        assert states == ["complete", "complete", "unrecognised"]
        assert s.execute(select(func.count(Media.id))).scalar_one() == 4
    app.close()


@pytest.mark.parametrize("kill_after", ["copied", "stored"])
def test_sigkill_then_restart_loses_and_duplicates_nothing(tmp_path: Path, catalog_url: str, kill_after: str,
                                                           ffmpeg_ok: None) -> None:
    cfg = write_config(tmp_path, catalog_url, f"file://{tmp_path / 'objects'}", extra=EXTRA)
    text = cfg.read_text().replace("[station]\n", "[station]\nwipe_after_verify = true\ncopy_chunk_bytes = 65536\n", 1)
    text = text.replace("file_stable_seconds = 0.0", "file_stable_seconds = 0.5")
    cfg.write_text(text)
    vol = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", serial="A000009", clips=6, photos=2,
                                                             audio=0, seconds=4))
    originals = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in vol.rglob("*") if p.suffix in (".MP4", ".JPG")}
    # The device's clock runs a day ahead: every file looks freshly written, so the daemon waits
    # file_stable_seconds before each copy. That paces the dock, so the kill below lands mid-dock
    # however loaded the machine is (a whole dock of small files otherwise fits between two polls).
    ahead = time.time() + 86400
    for f in vol.rglob("*"):
        if f.is_file():
            os.utime(f, (ahead, ahead))
    app = App(load_settings(cfg))
    p = start_daemon(cfg, tmp_path)
    try:
        wait_for(lambda: events(app, kill_after) >= 2, poll=0.01)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    with app.catalog.session() as s:
        cut = [(d.state, d.files_done, d.files_total) for d in s.execute(select(DockSession)).scalars()]
    assert cut and all(st != "complete" for st, _, _ in cut), f"the kill landed after the dock finished: {cut}"
    # Nothing was wiped without its stored + verified record.
    with app.catalog.session() as s:
        for w in s.execute(select(CustodyEvent).where(CustodyEvent.action == "wiped")).scalars():
            before = set(s.execute(select(CustodyEvent.action).where(CustodyEvent.media_id == w.media_id,
                                                                     CustodyEvent.seq < w.seq)).scalars())
            assert {"stored", "verified"} <= before
    remaining = {p.name for p in vol.rglob("*") if p.suffix in (".MP4", ".JPG")}
    stored_names = set()
    with app.catalog.session() as s:
        for m in s.execute(select(Media)).scalars():
            stored_names.add(m.original_name)
    assert set(originals) <= remaining | stored_names  # every recording is on the device or stored
    # Restart: it resumes and finishes.
    p2 = start_daemon(cfg, tmp_path, "--exit-when-idle")
    out, _ = p2.communicate(timeout=300)
    assert p2.returncode == 0, out
    with app.catalog.session() as s:
        media = s.execute(select(Media)).scalars().all()
        assert sorted(m.original_name for m in media) == sorted(originals)  # each exactly once
        assert {m.original_name: m.sha256 for m in media} == originals
        # The killed dock says so: still incomplete, resumed by the next dock, or completed late
        # from its own spool copies - never silently "complete" as if nothing had happened.
        docks = [(d.state, d.message, d.files_done, d.files_total) for d in s.execute(select(DockSession)).scalars()]
        assert any(st in ("incomplete", "resumed") or (msg or "").startswith("completed after the dock")
                   for st, msg, _, _ in docks), docks
    assert not [p for p in vol.rglob("*") if p.suffix in (".MP4", ".JPG")]  # all wiped, after verification
    assert not list((tmp_path / "spool" / "tmp").glob("*.part"))
    rep = verify_all(app, actor="t")
    assert rep.ok, rep.problems
    app.close()


def test_daemon_station_trouble(tmp_path: Path, sqlite_url: str, ffmpeg_ok: None) -> None:
    """One serial docked twice at once (the second waits, then runs), an empty mount point
    (does not hold up --exit-when-idle), a volume label that is not UTF-8 (GBK), a symlink in
    the dock root (not a volume): every recording stored, nothing hangs."""
    cfg = write_config(tmp_path, sqlite_url, f"file://{tmp_path / 'objects'}", extra=EXTRA)
    docks = tmp_path / "docks"
    a1 = build_volume(docks / "A1", SimDevice(kind="gat947", serial="A000009", clips=1, photos=0, audio=0, seconds=1))
    a2 = build_volume(tmp_path / "aside" / "A2", SimDevice(kind="gat947", serial="A000009", clips=1, photos=0,
                                                           audio=0, seconds=1))
    extra = next(a2.rglob("*.MP4"))
    extra.with_name("A000009_310001_20260101080000_0005.MP4").write_bytes(extra.read_bytes() + b"another take")
    extra.unlink()
    os.rename(a2, docks / "A2")
    gbk = os.fsencode(docks) + b"/" + "执法仪".encode("gbk")
    os.rename(build_volume(tmp_path / "aside" / "g", SimDevice(kind="dcim", serial="DC00009", clips=1, photos=0,
                                                               audio=0, seconds=1)), gbk)
    (docks / "empty-mount").mkdir()
    (docks / "link").symlink_to("/")
    p = start_daemon(cfg, tmp_path, "--exit-when-idle")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    app = App(load_settings(cfg))
    with app.catalog.session() as s:
        assert s.execute(select(func.count(Media.id))).scalar_one() == 3, out
        names = {d.volume_path.rsplit("/", 1)[-1] for d in s.execute(select(DockSession)).scalars()}
        assert "\u05b4\\xb7\\xa8\\xd2\\xc7" in names and {"A1", "A2"} <= names, names  # GBK bytes, escaped
    app.close()
    assert a1.exists()
