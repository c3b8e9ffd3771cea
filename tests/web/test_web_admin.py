"""Administrator pages show what the catalog holds: registers, station status, holds, reports."""
from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.models import DeviceAssignment, DockSession, Hold, Job, OffloadItem, utcnow
from web.app import create_app
from web.i18n import MESSAGES
from web_support import events, login, sample_video, seed  # noqa: F401


def test_admin_pages_show_the_catalog(make_app, catalog_url: str, sample_video) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url)
    sd = seed(app, sample_video)
    now = utcnow()
    with app.catalog.session() as s:
        s.add(DeviceAssignment(device_id=1, officer_id=1, valid_from=now - timedelta(days=30)))
        running = DockSession(station="station-01", volume_path="/docks/DSJ0001", device_id=1, officer_badge="P00001",
                              state="offloading", files_total=10, files_done=4, bytes_total=1000, bytes_done=250,
                              heartbeat_at=now)
        stale = DockSession(station="station-01", volume_path="/docks/DSJ0002", device_id=2, state="offloading",
                            files_total=3, files_done=1, bytes_total=300, bytes_done=100,
                            heartbeat_at=now - timedelta(minutes=30))
        failed = DockSession(station="station-01", volume_path="/docks/unknown", state="unrecognised",
                             message="no device profile matches")
        s.add_all([running, stale, failed])
        s.flush()
        s.add(OffloadItem(session_id=running.id, device_path="DCIM/../../etc/passwd", status="refused",
                          reason="path escapes the volume"))
        s.add_all([Job(kind="index", media_id=sd.media_u1, state="pending"),
                   Job(kind="index", media_id=sd.media_u2, state="failed", attempts=3,
                       last_error="ffprobe: moov atom not found")])
    with TestClient(create_app(app)) as client:
        csrf = login(client, "admin")
        officers = client.get("/admin/officers").text
        assert "P00001" in officers and "张伟" in officers and "330100000002" in officers
        assert "DSJ0002" in client.get("/admin/devices").text
        assert "DSJ0001" in client.get("/admin/assignments").text and "P00001" in client.get("/admin/assignments").text
        station = client.get("/admin/station").text
        assert "4 / 10" in station and "25%" in station  # files and bytes progress of the running offload
        assert 'class="stale"' in station and station.count('class="stale"') == 1
        assert "no device profile matches" in station and "moov atom not found" in station
        assert "path escapes the volume" in station
        assert '<b>1</b> <span title="pending">等待</span>' in station
        assert '<b>1</b> <span title="failed">失败</span>' in station
        # Holds through the retention package, with the web's own trail beside it.
        r = client.post("/admin/holds", data={"target_kind": "case", "target_ref": sd.case_u1,
                                              "reason": "complaint 2026-17", "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert client.post("/admin/holds", data={"target_kind": "case", "target_ref": sd.case_u1, "reason": "",
                                                 "csrf": csrf}).status_code == 400
        page = client.get("/admin/retention").text
        assert "complaint 2026-17" in page
        with app.catalog.session() as s:
            hold = s.execute(select(Hold)).scalar_one()
        r = client.post(f"/admin/holds/{hold.id}/release", data={"reason": "complaint withdrawn", "csrf": csrf},
                        follow_redirects=False)
        assert r.status_code == 303
        for kind in ("ratio", "coverage", "usage"):
            r = client.get(f"/admin/reports?kind={kind}&last=2026-03-31&first=2026-03-01")
            assert r.status_code == 200 and f'id="report-{kind}"' in r.text
            if kind == "coverage":  # a share reads "n / total (p%)", as in `custody report coverage`
                assert re.search(r"<b>\d+ / \d+( \(\d+\.\d%\))?</b>", r.text), r.text
                assert not re.search(r"<b>\d{3,}\.\d%", r.text)
        assert client.get("/admin/reports?kind=nonsense").status_code == 400
    with app.catalog.session() as s:
        assert s.execute(select(Hold)).scalar_one().release_reason == "complaint withdrawn"
    added = events(app, action="hold_added")[-1]
    assert added.actor == "admin" and added.remote_addr == "testclient"  # retention's own event says from where
    assert events(app, action="hold_released")[-1].remote_addr == "testclient"
    changes = [(e.detail["change"], e.remote_addr) for e in events(app, action="admin_change", actor="admin")]
    assert ("hold_added", "testclient") in changes and ("hold_released", "testclient") in changes
    viewed = {e.subject for e in events(app, action="viewed", actor="admin")}
    assert {"page:/admin/station", "page:/admin/officers", "report:coverage"} <= viewed


def test_inspector_sees_only_own_recordings(make_app, sample_video) -> None:  # noqa: ANN001
    app = make_app()
    sd = seed(app, sample_video)
    with TestClient(create_app(app)) as client:
        login(client, "P00001")
        page = client.get("/mine").text
        assert "REC_20260312_093000.mp4" in page and "B.mp4" not in page and "C.mp4" not in page
        assert client.get(f"/media/{sd.media_u1}").status_code == 403
    # An account named for the person, linked to the officer number by `users add --badge`.
    from catalog.accounts import add_account
    from web_support import PASSWORD
    with app.catalog.session() as s:
        add_account(s, "zhangwei", "inspector", password=PASSWORD, badge="P00001", created_by="test")
        add_account(s, "nobody", "inspector", password=PASSWORD, created_by="test")
    with TestClient(create_app(app)) as client:
        login(client, "zhangwei")
        assert "REC_20260312_093000.mp4" in client.get("/mine").text
    with TestClient(create_app(app)) as client:
        login(client, "nobody")
        assert "REC_20260312_093000.mp4" not in client.get("/mine").text


def test_language_switch_and_safe_redirects(make_app, sample_video) -> None:  # noqa: ANN001
    app = make_app()
    seed(app, sample_video)
    assert all(len(pair) == 2 and all(pair) for pair in MESSAGES.values())
    with TestClient(create_app(app)) as client:
        assert "登录" in client.get("/login").text
        r = client.get("/lang?to=en&next=/login", follow_redirects=False)
        assert r.headers["location"] == "/login"
        assert "Log in" in client.get("/login").text
        # ?next= never leaves the site.
        for target in ("https://evil.example/", "//evil.example/", "/\\evil"):
            assert client.get(f"/lang?to=en&next={target}", follow_redirects=False).headers["location"] == "/"
        r = client.get("/login")
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
