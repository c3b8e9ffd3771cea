"""Redaction from the web app: the form on the media page, the derived copy's page, approval by
a second reviewer (the author is refused), every step a custody event with the address."""
from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.accounts import add_account
from catalog.models import Media, Redaction
from disclose_support import decode_audio, make_clip, rms, store_original
from storage.fixity import sha256_file
from web.app import create_app
from web.routes import disclose as disclose_routes
from web_support import PASSWORD, events, login


def test_redact_and_approve_from_the_browser(make_app, catalog_url: str, tmp_path: Path, ffmpeg_ok: None) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url)
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer", password=PASSWORD)
        add_account(s, "rev2", "reviewer", password=PASSWORD)
    clip = make_clip(tmp_path / "REC_0002.mp4", seconds=2.0, face=False)
    mid = store_original(app, clip.path)
    px, py = clip.plate_at[0]
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev1", PASSWORD)
        page = client.get(f"/media/{mid}").text
        assert f'href="/media/{mid}/redact"' in page
        form = client.get(f"/media/{mid}/redact").text
        assert 'id="redact-form"' in form and "原件不会被修改" in form
        marked = client.get(f"/media/{mid}/redact?from=0.4&to=1:02").text
        assert 'value="0.4"' in marked and 'value="1:02"' in marked
        # A reason is required; bad ranges are refused with a message.
        r = client.post(f"/media/{mid}/redact", data={"reason": "", "faces": "1", "csrf": csrf})
        assert r.status_code == 400
        # A redaction that fails in the background (segment past the end) says why, and is logged.
        r = client.post(f"/media/{mid}/redact", data={"start": "30", "faces": "1", "reason": "too far", "csrf": csrf})
        assert r.status_code == 400 and "past the recording" in r.text
        assert [e.outcome for e in events(app, action="redacted")] == ["failed"]
        r = client.post(f"/media/{mid}/redact", data={"reason": "plate", "mute": "5-4", "csrf": csrf})
        assert r.status_code == 400
        boxes = json.dumps([{"t": 0, "x": px, "y": py, "w": 120, "h": 40, "label": "plate"}])
        r = client.post(f"/media/{mid}/redact", data={"start": "0", "end": "1.5", "boxes": boxes,
                                                        "mute": "0.5-1.0", "reason": "车牌 publication",
                                                        "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert r.headers["location"].startswith("/redact-runs/")
        r = client.get(r.headers["location"], follow_redirects=False)  # done within the form's wait
        assert r.status_code == 303 and r.headers["location"].startswith("/redactions/"), r.text
        did = int(r.headers["location"].rsplit("/", 1)[1])
        own = client.get(f"/redactions/{did}").text
        assert 'id="approve"' not in own and "车牌 publication" in own and 'id="redaction-state"' in own
        # The author's POST is refused anyway.
        assert client.post(f"/redactions/{did}/approve", data={"csrf": csrf}).status_code == 403
        assert 'href="/redactions/' in client.get(f"/media/{did}").text
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev2", PASSWORD)
        assert 'id="approve"' in client.get(f"/redactions/{did}").text
        r = client.post(f"/redactions/{did}/approve", data={"note": "ok", "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert 'id="approve"' not in client.get(f"/redactions/{did}").text
    with app.catalog.session() as s:
        red = s.execute(select(Redaction).where(Redaction.derived_media_id == did)).scalar_one()
        assert (red.created_by, red.approved_by) == ("rev1", "rev2") and red.original_media_id == mid
        assert red.log["boxes"][0]["given"]["label"] == "plate" and red.log["mute"] == [[0.5, 1.0]]
        der = s.get(Media, did)
        assert der.derived_from == mid
        orig_sha = s.get(Media, mid).sha256
        path = app.store.local_path(der.storage_key)
    assert sha256_file(clip.path) == orig_sha
    a = decode_audio(path)
    assert rms(a[int(0.55 * 48000):int(0.95 * 48000)]) < 1e-4 and rms(a[:int(0.4 * 48000)]) > 0.05
    made = [e for e in events(app, action="redacted") if e.outcome == "ok"]
    assert len(made) == 1 and made[0].remote_addr == "testclient" and made[0].actor == "rev1"
    assert [(e.actor, e.outcome) for e in events(app, action="redaction_approved")] == [("rev1", "refused"),
                                                                                      ("rev2", "ok")]


def test_a_long_redaction_shows_progress_to_its_author_only(make_app, tmp_path: Path, ffmpeg_ok: None,
                                                            monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(disclose_routes, "WAIT_SECONDS", 0)
    app = make_app()
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer", password=PASSWORD)
        add_account(s, "rev2", "reviewer", password=PASSWORD)
    clip = make_clip(tmp_path / "REC_0003.mp4", seconds=3.0)
    mid = store_original(app, clip.path)
    with TestClient(create_app(app)) as client, TestClient(create_app(app)) as other:
        csrf = login(client, "rev1", PASSWORD)
        login(other, "rev2", PASSWORD)
        r = client.post(f"/media/{mid}/redact", data={"faces": "1", "reason": "public", "csrf": csrf},
                        follow_redirects=False)
        progress = r.headers["location"]
        assert other.get(progress).status_code == 404
        for _ in range(240):
            r = client.get(progress, follow_redirects=False)
            if r.status_code == 303:
                break
            assert r.status_code == 200 and r.headers["refresh"] == "3" and 'id="redact-running"' in r.text
            time.sleep(0.25)
        assert r.status_code == 303 and r.headers["location"].startswith("/redactions/")
        assert client.get(progress, follow_redirects=False).headers["location"] == r.headers["location"]  # kept
    with app.catalog.session() as s:
        assert s.execute(select(Media).where(Media.derived_from == mid)).scalar_one().kind == "video"
