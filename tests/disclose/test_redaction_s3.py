"""A derived copy on a real S3 store (SeaweedFS with Object Lock): its own object, the original's
retain-until and legal hold, the original's object untouched; `media get` streams it back."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.accounts import add_account
from catalog.models import Media
from custody.cli import cli
from disclose_support import make_clip, store_original
from storage.fixity import sha256_file

pytestmark = pytest.mark.s3


def test_derived_copy_on_s3_is_locked_like_its_original(make_app, sqlite_url, s3_url, seaweed, tmp_path: Path,
                                                         ffmpeg_ok: None) -> None:  # noqa: ANN001
    app = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer")
    clip = make_clip(tmp_path / "REC_S3.mp4", seconds=2.0)
    mid = store_original(app, clip.path)
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    with app.catalog.session() as s:
        m = s.get(Media, mid)
        okey, osha = m.storage_key, m.sha256
        app.store.set_retention(okey, until, "COMPLIANCE")
        app.store.set_legal_hold(okey, True)
        m.lock_until, m.legal_hold_applied = until, True
    before = app.store.head(okey)
    cfg = str(app.settings.config_path)
    res = CliRunner().invoke(cli, ["--config", cfg, "--user", "rev1", "redact", str(mid), "--to", "1", "--faces",
                                   "--reason", "court copy", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)["derived"]
    info = app.store.head(d["storage_key"])
    assert info is not None and info.sha256 == d["sha256"] and info.retain_until == until
    assert info.lock_mode == "COMPLIANCE" and info.legal_hold
    after = app.store.head(okey)
    assert (after.version_id, after.size, after.sha256) == (before.version_id, before.size, osha)
    out = tmp_path / "copy.mp4"
    res = CliRunner().invoke(cli, ["--config", cfg, "--user", "rev1", "media", "get", str(d["id"]), "--out", str(out)],
                             catch_exceptions=False)
    assert res.exit_code == 0 and sha256_file(out) == d["sha256"]
