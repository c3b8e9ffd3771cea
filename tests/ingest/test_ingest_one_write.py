"""Issue 14 on the embedded default: the local store takes the spool copy itself (one write
per byte), and the CLI path (`custody ingest`, `custody index --pending`) cleans the spool
copies it stored, verified and indexed, as the daemon does."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.simulate import SimDevice, build_volume
from tests.conftest import write_config
from tests.helpers_ingest import run_cli, summary

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")


def test_cli_ingest_links_and_index_pending_cleans_the_spool(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'objects'}",
                       extra="[indexer]\nworkers = 0\n")
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", serial="A100001", clips=2, photos=1,
                                                           audio=0, seconds=1))
    res = run_cli(["ingest", str(v), "--json"], cfg, tmp_path)
    j = summary(res)
    assert res.returncode == 0 and j["counts"]["stored"] == 3, j
    spool = sorted((tmp_path / "spool" / "objects").iterdir())
    stored = {p.name: p for p in (tmp_path / "objects" / "media").rglob("*") if p.is_file() and "." not in p.name}
    assert len(spool) == 3
    for copy in spool:  # the object IS the spool copy (same inode): its bytes were written once
        obj = stored[copy.name]
        assert os.stat(obj).st_ino == os.stat(copy).st_ino
    # Not indexed yet (workers = 0): the copies stay for the indexer; `index --pending` cleans them.
    out = run_cli(["index", "--pending"], cfg, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "spool_cleaned: 3" in out.stdout, out.stdout
    assert list((tmp_path / "spool" / "objects").iterdir()) == []
    assert all(p.stat().st_nlink == 1 and p.stat().st_size > 0 for p in stored.values())  # objects kept
    assert run_cli(["verify", "--json"], cfg, tmp_path).returncode == 0


def test_cli_ingest_cleans_what_is_already_indexed(tmp_path: Path) -> None:
    """A second dock of the same bytes: the recordings are stored, verified and indexed, so the
    new spool copies are caches and `custody ingest` removes them itself."""
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'objects'}",
                       extra="[indexer]\nworkers = 0\n")
    dev = SimDevice(kind="gat947", serial="A100001", clips=1, photos=1, audio=0, seconds=1)
    v = build_volume(tmp_path / "docks" / "cam", dev)
    keep = {p.relative_to(v): p.read_bytes() for p in v.rglob("*") if p.is_file()}
    assert run_cli(["ingest", str(v), "--json", "--wipe"], cfg, tmp_path).returncode == 0
    assert run_cli(["index", "--pending"], cfg, tmp_path).returncode == 0
    for rel, data in keep.items():  # the same files docked again
        (v / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (v / rel).exists():
            (v / rel).write_bytes(data)
    res = run_cli(["ingest", str(v), "--json"], cfg, tmp_path)
    assert res.returncode == 0, res.stderr
    assert list((tmp_path / "spool" / "objects").iterdir()) == []
