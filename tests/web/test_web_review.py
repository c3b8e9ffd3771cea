"""Link, unlink and the review queue from the browser's forms: rows, reasons, custody events."""
from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.models import MediaLink, ReviewItem
from web.app import create_app
from web_support import events, login, sample_video, seed  # noqa: F401


def test_link_unlink_and_resolve(make_app, catalog_url: str, sample_video) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url)
    sd = seed(app, sample_video)
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev")
        # A reason is required.
        r = client.post(f"/media/{sd.media_orphan}/link", data={"case_no": sd.case_u1, "reason": " ", "csrf": csrf})
        assert r.status_code == 400 and "请填写理由" in r.text
        r = client.post(f"/media/{sd.media_orphan}/link", data={"case_no": "无此案件", "reason": "x1", "csrf": csrf})
        assert r.status_code == 404
        # Linking the queued orphan closes its review item.
        r = client.post(f"/media/{sd.media_orphan}/link",
                        data={"case_no": sd.case_u1, "reason": "张伟 confirms the second visit", "csrf": csrf},
                        follow_redirects=False)
        assert r.status_code == 303
        page = client.get(f"/media/{sd.media_orphan}").text
        assert "张伟 confirms the second visit" in page and sd.case_u1 in page
        # Unlink the automatic link of the video, with a reason.
        r = client.post(f"/links/{sd.link_u1}/unlink", data={"reason": "other inspection", "csrf": csrf},
                        follow_redirects=False)
        assert r.status_code == 303
        assert client.post(f"/links/{sd.link_u1}/unlink", data={"reason": "again", "csrf": csrf}).status_code == 400
        case_page = client.get(f"/cases/{sd.case_u1}").text
        assert f'id="rec-{sd.media_orphan}"' in case_page and f'id="rec-{sd.media_u1}"' not in case_page
    with app.catalog.session() as s:
        old = s.get(MediaLink, sd.link_u1)
        assert not old.active and old.removed_by == "rev" and old.removed_reason == "other inspection"
        new = s.execute(select(MediaLink).where(MediaLink.media_id == sd.media_orphan,
                                                MediaLink.active.is_(True))).scalar_one()
        assert (new.method, new.created_by) == ("manual", "rev")
        assert s.get(ReviewItem, sd.review_id).state == "resolved"
    assert [e.detail["did"] for e in events(app, action="web_action")] == ["linked", "unlinked"]
    assert all(e.remote_addr == "testclient" for e in events(app, action="web_action"))
    assert events(app, action="unlinked")[-1].media_id == sd.media_u1


def test_resolve_review_with_no_case(make_app, sample_video) -> None:  # noqa: ANN001
    app = make_app()
    sd = seed(app, sample_video)
    with TestClient(create_app(app)) as client:
        csrf = login(client, "admin")
        assert "two inspections overlap" in client.get("/review").text
        r = client.post(f"/review/{sd.review_id}/resolve", data={"case_no": "", "reason": "patrol, no inspection",
                                                                 "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert "two inspections overlap" not in client.get("/review").text
        r = client.post(f"/review/{sd.review_id}/resolve", data={"case_no": "", "reason": "again", "csrf": csrf})
        assert r.status_code == 400
    with app.catalog.session() as s:
        item = s.get(ReviewItem, sd.review_id)
        assert item.resolved_by == "admin" and "patrol, no inspection" in item.resolution
    ev = events(app, action="review_resolved")[-1]
    assert (ev.actor, ev.media_id, ev.remote_addr) == ("admin", sd.media_orphan, "testclient")
