"""Login sessions, lockout, disabled accounts, unit-limited reviewers, the audit page."""
from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.custody_log import verify_chain
from catalog.models import Account, LoginSession
from web.app import create_app
from web_support import CSRF_RE, PASSWORD, events, login, sample_video, seed  # noqa: F401


@pytest.fixture
def site(make_app, catalog_url: str, sample_video):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=catalog_url, extra="[web]\nlockout_failures = 3\nlockout_minutes = 10\n")
    return app, seed(app, sample_video)


def _try(client: TestClient, username: str, password: str) -> str:
    token = CSRF_RE.search(client.get("/login").text).group(1)
    r = client.post("/login", data={"username": username, "password": password, "csrf": token},
                    follow_redirects=False)
    return r.headers["location"]


def test_session_token_is_stored_only_as_its_hash(site) -> None:  # noqa: ANN001
    app, _ = site
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        token = client.cookies["custody_session"]
    with app.catalog.session() as s:
        rows = list(s.execute(select(LoginSession)).scalars())
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in rows[0].token_hash
    ok = [e for e in events(app, action="login") if e.outcome == "ok"]
    assert ok and ok[-1].actor == "rev" and ok[-1].remote_addr == "testclient"


def test_lockout_after_failures_refuses_even_the_right_password(site) -> None:  # noqa: ANN001
    app, _ = site
    with TestClient(create_app(app)) as client:
        # Uniform answers (issue 17): wrong, locked or disabled all read "failed"; the log keeps why.
        assert "error=failed" in _try(client, "rev", "wrong password 1")
        assert "error=failed" in _try(client, "rev", "wrong password 2")
        assert "error=failed" in _try(client, "rev", "wrong password 3")
        assert "error=failed" in _try(client, "rev", PASSWORD)
        assert "custody_session" not in client.cookies
    refused = [e for e in events(app, action="login") if e.outcome == "refused" and e.actor == "rev"]
    assert len(refused) == 4
    assert [e.detail["reason"] for e in refused][-1] == "locked for this address after failed logins"
    assert any(e.detail.get("change") == "account_locked" for e in events(app, action="admin_change"))
    # An administrator unlocks it from the accounts page; the right password works again.
    with TestClient(create_app(app)) as admin:
        csrf = login(admin, "admin")
        assert admin.post("/admin/accounts/rev/unlock", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    with TestClient(create_app(app)) as client:
        login(client, "rev")
    with app.catalog.session() as s:
        assert verify_chain(s).ok


def test_unknown_user_is_refused_and_logged(site) -> None:  # noqa: ANN001
    app, _ = site
    with TestClient(create_app(app)) as client:
        assert "error=failed" in _try(client, "mallory", "whatever-password")
    e = events(app, action="login")[-1]
    assert (e.actor, e.outcome, e.detail["reason"]) == ("mallory", "refused", "no such account")


def test_disabling_an_account_ends_its_open_session(site) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app)) as rev, TestClient(create_app(app)) as admin:
        login(rev, "rev")
        assert rev.get(f"/media/{sd.media_u1}").status_code == 200
        csrf = login(admin, "admin")
        assert admin.post("/admin/accounts/rev/disable", data={"csrf": csrf},
                          follow_redirects=False).status_code == 303
        r = rev.get(f"/media/{sd.media_u1}", follow_redirects=False)
        assert r.status_code == 401
        assert "error=failed" in _try(rev, "rev", PASSWORD)  # uniform answer (issue 17); the log says why
        # The last enabled administrator cannot disable itself out of existence.
        r = admin.post("/admin/accounts/admin/disable", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 400
    with app.catalog.session() as s:
        acc = s.execute(select(Account).where(Account.username == "rev")).scalar_one()
        assert acc.disabled
    changes = [e.detail.get("change") for e in events(app, action="admin_change", actor="admin")]
    assert "account_disabled" in changes


def test_logout_revokes_the_session(site) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev")
        token = client.cookies["custody_session"]
        assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
        client.cookies.set("custody_session", token)  # a copied cookie is useless after logout
        assert client.get(f"/media/{sd.media_u1}", follow_redirects=False).status_code == 401
    assert events(app, action="logout")[-1].actor == "rev"


def test_reviewer_limited_to_a_unit_sees_only_that_unit(site) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev2")  # covers unit 2 only
        r = client.get(f"/search?case_no={quote('应急检')}")
        assert sd.case_u2 in r.text and sd.case_u1 not in r.text
        assert client.get(f"/cases/{quote(sd.case_u2)}").status_code == 200
        # Outside the account's units answers as missing (404, issue 17); refusals are still logged.
        assert client.get(f"/cases/{quote(sd.case_u1)}").status_code == 404
        assert client.get(f"/media/{sd.media_u1}").status_code == 404
        assert client.get(f"/media/{sd.media_u1}/stream").status_code == 404
        assert client.get(f"/derivatives/{sd.frames[0]}").status_code == 404
        assert client.get(f"/media/{sd.media_u2}/stream").status_code == 200
        r = client.post(f"/media/{sd.media_u2}/link", data={"case_no": sd.case_u1, "reason": "x1", "csrf": csrf})
        assert r.status_code == 404
        assert client.post(f"/cases/{quote(sd.case_u1)}/export", data={"csrf": csrf}).status_code == 404
        assert sd.case_u1 not in client.get("/review").text  # the orphan is a unit-1 recording
    refused = [e for e in events(app, actor="rev2") if e.outcome == "refused"]
    subjects = {e.subject for e in refused}
    assert f"GET /cases/{sd.case_u1}" in subjects and f"GET /media/{sd.media_u1}/stream" in subjects
    assert any(e.action == "exported" for e in refused)
    assert not [e for e in events(app, action="linked")]


def test_auditor_filters_the_custody_log(site) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app)) as rev:
        login(rev, "rev")
        rev.get(f"/media/{sd.media_u1}")
        rev.get(f"/media/{sd.media_u1}/stream", headers={"Range": "bytes=0-99"})
    with TestClient(create_app(app)) as aud:
        login(aud, "aud")
        page = aud.get(f"/audit?actor=rev&action=streamed&media_id={sd.media_u1}").text
        assert "streamed" in page and '"start": 0' in page
        assert 'data-action="viewed"' not in page  # the filter narrowed to streams
        assert aud.get("/audit?since=not-a-date").status_code == 400
        everything = aud.get("/audit").text
        assert 'data-action="login"' in everything and 'data-action="viewed"' in everything
    assert events(app, actor="aud", action="viewed")[-1].subject == "custody-log"
