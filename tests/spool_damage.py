"""Shared scenario: the spool copy is damaged between the copy and the upload."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import select

from catalog.models import CustodyEvent, Media
from ingest.pipeline import ingest_volume
from catalog.audit import verify_all
from storage.base import media_key


def damage_then_redock(app, volume: Path, pick: Callable[[int], bool], monkeypatch: pytest.MonkeyPatch,
                       spool: Path) -> None:  # noqa: ANN001
    """Flip one byte of the first spool copy `pick(size)` chooses, just before it is stored.
    Nothing damaged may be stored, nothing unstored wiped; the next dock copies it again."""
    real = app.store.put_file
    damaged: list[Path] = []

    def damaging(key: str, path: Path, sha256: str, size: int, **kw):  # noqa: ANN003, ANN202
        if not damaged and pick(size):
            with open(path, "r+b") as f:
                f.seek(size // 2)
                b = f.read(1)
                f.seek(size // 2)
                f.write(bytes([b[0] ^ 0xFF]))
            damaged.append(path)
        return real(key, path, sha256, size, **kw)

    monkeypatch.setattr(app.store, "put_file", damaging)
    files = sorted(p for p in volume.rglob("*") if p.is_file() and p.suffix.upper() in (".MP4", ".JPG"))
    res = ingest_volume(app, volume, wipe=True)
    j = res.to_json()
    assert damaged, "no spool copy was damaged: the scenario did not run"
    assert res.state == "incomplete" and j["counts"]["skipped"] == 1, j
    bad = [f for f in j["files"] if f["status"] == "skipped"]
    assert "damaged" in bad[0]["reason"] and "copied again" in bad[0]["reason"]
    assert (volume / bad[0]["path"]).exists(), "an unstored file was wiped"
    assert res.wiped == len(files) - 1  # the others were stored and verified, so wiped
    with app.catalog.session() as s:
        assert s.execute(select(Media).where(Media.sha256 == bad[0]["sha256"])).first() is None
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.action == "spool_damaged")).scalars().all()
        assert len(ev) == 1 and ev[0].outcome == "failed"
    assert len(list((spool / "damaged").iterdir())) == 1  # set aside, not deleted, not uploaded
    assert app.store.head(media_key(bad[0]["sha256"])) is None, "damaged bytes reached the store"
    # Docked again: copied afresh from the device, stored, verified, wiped.
    again = ingest_volume(app, volume, wipe=True)
    assert again.state == "complete" and again.counts["stored"] == 1, again.to_json()
    assert again.wiped == 1 and not (volume / bad[0]["path"]).exists()
    rep = verify_all(app, actor="t")
    assert rep.ok, rep
