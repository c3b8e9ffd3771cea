"""Issue 17: `custody media show/list` never send a file name's control characters to the
terminal (a device can name a file "\\x1b]0;...\\x07" or with a bidi override)."""
from __future__ import annotations

from pathlib import Path

import pytest
from indexer_support import add_media, add_user, run_cli

from ingest.simulate import make_video

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")
HOSTILE = "DCIM/\x1b[2J\x1b]0;owned\x07\x9b31m\u202eevil\x7f.mp4"


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_media_show_and_list_escape_control_characters(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    add_user(app, "admin", "administrator")
    clip = make_video(tmp_path / "c.mp4", 0.4, size="160x120", rate=5, audio=False)
    mid = add_media(app, clip, "video", original_path=HOSTILE, badge="310001")
    for args in (("media", "show", str(mid)), ("media", "show", str(mid), "--json"), ("media", "list"),
                 ("media", "list", "--json")):
        r = run_cli(app, *args)
        assert r.exit_code == 0, r.output
        bad = [c for c in r.output if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) < 0xa0 or c == "\u202e"]
        assert not bad, (args, bad)
    shown = run_cli(app, "media", "show", str(mid)).output
    assert "\\x1b[2J" in shown and "\\x9b31m" in shown and "\\x202eevil" in shown
