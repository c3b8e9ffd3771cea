"""Helpers for the sharing tests: a redacted copy written straight into the catalog (as 18a's
`custody redact` records it: a media row naming its original and a redactions row), the CLI, links."""
from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from catalog.app import App
from catalog.models import Media, Redaction
from custody.cli import cli
from storage.base import media_key


def run_cli(app: App, *args: str):  # noqa: ANN201
    return CliRunner().invoke(cli, ["--config", str(app.settings.config_path), *args], catch_exceptions=False)


def add_copy(app: App, original_id: int, *, approved: bool, data: bytes | None = None, by: str = "rev",
             approver: str = "admin") -> int:
    """A derived (redacted) recording of `original_id` with its redaction log; approved or not."""
    data = data or (b"redacted copy of %d " % original_id) * 200
    sha = hashlib.sha256(data).hexdigest()
    app.store.put_bytes(media_key(sha), data)
    with app.catalog.session() as s:
        orig = s.get(Media, original_id)
        m = Media(sha256=sha, size=len(data), storage_key=media_key(sha), kind="video",
                  original_path=f"derived/{sha[:12]}.mp4", original_name=f"redacted-{original_id}.mp4",
                  unit_code=orig.unit_code, officer_badge=orig.officer_badge, recorded_start=orig.recorded_start,
                  duration_seconds=orig.duration_seconds, derived_from=orig.id)
        s.add(m)
        s.flush()
        now = datetime.now(timezone.utc)
        s.add(Redaction(derived_media_id=m.id, original_media_id=orig.id, created_by=by, created_at=now,
                        reason="publish hazard 隐患曝光", approved_by=approver if approved else None,
                        approved_at=now if approved else None,
                        log={"detector": {"name": "centerface", "threshold": 0.5},
                             "boxes": [{"t": 0.0, "x": 10, "y": 10, "w": 40, "h": 20, "label": "plate"}],
                             "mute": [[1.0, 2.0]]}))
        return m.id


def approve(app: App, media_id: int, by: str = "admin") -> None:
    with app.catalog.session() as s:
        r = s.execute(select(Redaction).where(Redaction.derived_media_id == media_id)).scalar_one()
        r.approved_by, r.approved_at = by, datetime.now(timezone.utc)


def create(app: App, user: str, *args: str) -> dict:
    r = run_cli(app, "--user", user, "share", "create", *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def token_of(out: dict) -> str:
    return out["url"].rsplit("/s/", 1)[1]


def unzip(data: bytes, dest: Path) -> Path:
    archive = dest / "package.zip"
    archive.write_bytes(data)
    with zipfile.ZipFile(archive) as z:
        z.extractall(dest / "pkg")
    (bag,) = list((dest / "pkg").iterdir())
    return bag
