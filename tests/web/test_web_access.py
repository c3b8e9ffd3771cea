"""Issue 17: access follows duty (a revoked or ended certificate disables the officer's
account, with the reason logged), the TOTP second factor for administrators, and the
access review (auditor page and `custody users review`)."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pyotp
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.accounts import add_account
from catalog.custody_log import verify_chain
from catalog.models import Account, Officer
from custody.cli import cli
from web.app import create_app
from web_support import CSRF_RE, PASSWORD, events, login, sample_video, seed  # noqa: F401


@pytest.fixture
def site(make_app, catalog_url: str, sample_video):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=catalog_url, extra="[web]\nrequire_mfa_for = [\"administrator\"]\n")
    sd = seed(app, sample_video)
    with app.catalog.session() as s:
        add_account(s, "zhangwei", "inspector", password=PASSWORD, badge="P00001", created_by="test")
        add_account(s, "lina", "reviewer", password=PASSWORD, badge="P00002", created_by="test")
    return app, sd


def _post_login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    token = CSRF_RE.search(client.get("/login").text).group(1)
    r = client.post("/login", data={"username": username, "password": password, "csrf": token},
                    follow_redirects=False)
    return r.headers["location"]


def _set_officer(app, badge: str, **values) -> None:  # noqa: ANN001, ANN003
    with app.catalog.session() as s:
        o = s.execute(select(Officer).where(Officer.badge == badge)).scalar_one()
        for k, v in values.items():
            setattr(o, k, v)


def test_a_revoked_officers_account_cannot_log_in_and_the_reason_is_logged(site) -> None:  # noqa: ANN001
    app, _ = site
    with TestClient(create_app(app)) as client:
        assert _post_login(client, "zhangwei") == "/"  # works while the certificate is valid
    _set_officer(app, "P00001", status="revoked", status_changed_on=date(2026, 11, 30))
    with TestClient(create_app(app)) as client:
        assert "error=failed" in _post_login(client, "zhangwei")
        assert "custody_session" not in client.cookies
    with app.catalog.session() as s:
        acc = s.execute(select(Account).where(Account.username == "zhangwei")).scalar_one()
        assert acc.disabled and "revoked" in acc.disabled_reason
    off = [e for e in events(app, action="admin_change") if e.subject == "account:zhangwei"
           and e.detail.get("change") == "account_disabled"]
    assert len(off) == 1 and off[0].detail["automatic"] is True
    assert off[0].detail["reason"] == "officer P00001 certificate revoked on 2026-11-30"
    refused = [e for e in events(app, action="login") if e.actor == "zhangwei" and e.outcome == "refused"]
    assert "revoked" in refused[-1].detail["reason"]
    with app.catalog.session() as s:
        assert verify_chain(s).ok


def test_an_ended_certificate_ends_an_open_session(site) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app)) as client:
        login(client, "lina")
        assert client.get(f"/media/{sd.media_u1}/stream", headers={"Range": "bytes=0-9"}).status_code == 206
        _set_officer(app, "P00002", certified_to=date(2020, 1, 1))
        r = client.get(f"/media/{sd.media_u1}/stream", headers={"Range": "bytes=0-9"}, follow_redirects=False)
        assert r.status_code == 401
    off = [e for e in events(app, action="admin_change") if e.subject == "account:lina"]
    assert off[-1].detail["reason"] == "officer P00002 certificate ended on 2020-01-01"


def test_totp_is_required_and_checked_for_an_administrator(site) -> None:  # noqa: ANN001
    app, _ = site
    with TestClient(create_app(app)) as client:
        loc = _post_login(client, "admin")
        assert loc.startswith("/login/mfa")
        # The password alone opens nothing.
        r = client.get("/admin", headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login/mfa")
        page = client.get(loc).text
        secret = page.split('id="totp-secret">')[1].split("<")[0]
        csrf = CSRF_RE.search(page).group(1)
        totp = pyotp.TOTP(secret)
        wrong = str((int(totp.now()) + 1) % 1000000).zfill(6)
        r = client.post("/login/mfa", data={"code": wrong, "csrf": csrf, "next": "/admin"}, follow_redirects=False)
        assert "error=wrong" in r.headers["location"]
        assert client.get("/admin", follow_redirects=False).status_code in (303, 401)
        code = totp.now()
        r = client.post("/login/mfa", data={"code": code, "csrf": csrf, "next": "/admin"}, follow_redirects=False)
        assert r.status_code == 200 and 'id="recovery-codes"' in r.text
        recovery = [c.split("<")[0] for c in r.text.split("<li><code>")[1:]]
        assert len(recovery) == 10
        assert client.get("/admin", follow_redirects=False).status_code == 200
    with TestClient(create_app(app)) as client:
        # The same code again (a replay) is refused; a recovery code works, once.
        loc = _post_login(client, "admin")
        page = client.get(loc).text
        assert 'id="totp-secret"' not in page
        csrf = CSRF_RE.search(page).group(1)
        r = client.post("/login/mfa", data={"code": code, "csrf": csrf}, follow_redirects=False)
        assert "error=wrong" in r.headers["location"]
        r = client.post("/login/mfa", data={"code": recovery[0], "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303 and client.get("/admin", follow_redirects=False).status_code == 200
    with TestClient(create_app(app)) as client:
        loc = _post_login(client, "admin")
        csrf = CSRF_RE.search(client.get(loc).text).group(1)
        r = client.post("/login/mfa", data={"code": recovery[0], "csrf": csrf}, follow_redirects=False)
        assert "error=wrong" in r.headers["location"]
    steps = [(e.outcome, e.detail.get("step"), e.detail.get("reason")) for e in events(app, action="mfa")]
    assert ("ok", "enrolment_started", None) in steps and ("ok", "enrolled", None) in steps
    assert ("ok", "recovery_code_used", None) in steps
    assert [s for s in steps if s[0] == "refused"] == [("refused", "enrolment", "wrong code"),
                                                      ("refused", "verification", "wrong code"),
                                                      ("refused", "verification", "wrong code")]
    # A reviewer (not in require_mfa_for) logs in with the password alone.
    with TestClient(create_app(app)) as client:
        assert _post_login(client, "rev") == "/"


def test_access_review_page_and_command(site, tmp_path) -> None:  # noqa: ANN001
    app, _ = site
    _set_officer(app, "P00002", status="left")
    with app.catalog.session() as s:
        old = s.execute(select(Account).where(Account.username == "rev2")).scalar_one()
        old.created_at = datetime.now(timezone.utc) - timedelta(days=400)
    runner = CliRunner()
    config = str(app.settings.config_path)
    r = runner.invoke(cli, ["--config", config, "--user", "aud", "users", "review", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {a["username"] for a in out["privileged"]} == {"admin", "aud"}
    assert "rev2" in {a["username"] for a in out["unused"]}
    assert {a["username"]: a["disabled_reason"] for a in out["disabled"]}["lina"].endswith("certificate left")
    assert any(c["account"] == "lina" and c["change"] == "account_disabled" for c in out["changes"])
    r = runner.invoke(cli, ["--config", config, "--user", "rev", "users", "review"])
    assert r.exit_code == 4
    with TestClient(create_app(app)) as client:
        login(client, "aud")
        page = client.get("/audit/accounts?days=30").text
        assert 'id="privileged"' in page and "rev2" in page.split('id="unused"')[1].split("</table>")[0]
        assert "certificate left" in page.split('id="disabled"')[1].split("</table>")[0]


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_officer_import_revoking_a_certificate_disables_the_account(site, tmp_path) -> None:  # noqa: ANN001
    from cases import refdata

    app, _ = site
    path = tmp_path / "officers.csv"
    path.write_text("badge,cert_no,name,status,status_changed_on\nP00001,C-1,张伟,revoked,2026-12-01\n",
                    encoding="utf-8")
    with app.catalog.session() as s:
        rep = refdata.import_file(s, app.settings, "officers", path, actor="admin")
    assert any("zhangwei" in n and "revoked" in n for n in rep.notes)
    with app.catalog.session() as s:
        acc = s.execute(select(Account).where(Account.username == "zhangwei")).scalar_one()
        assert acc.disabled and acc.disabled_reason == "officer P00001 certificate revoked on 2026-12-01"
    off = [e for e in events(app, action="admin_change") if e.subject == "account:zhangwei"]
    assert off[-1].actor == "admin" and off[-1].detail["automatic"] is True
