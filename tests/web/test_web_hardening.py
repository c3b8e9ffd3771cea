"""Issue 17, what the probe found in the web app: bad inputs answer 400/404 (logged) instead of
500, a missing object is a logged failure without server paths, flooding is limited and
aggregated, argon2 work is bounded, an outsider cannot lock a known account, login errors
are uniform, out-of-scope ids answer 404, and the login CSRF pair must be the app's own."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.custody_log import verify_chain
from catalog.models import Derivative, Media
from web.app import create_app
from web_support import CSRF_RE, PASSWORD, events, login, sample_video, seed  # noqa: F401

HUGE = "99999999999999999999"


@pytest.fixture
def site(make_app, catalog_url: str, sample_video):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=catalog_url, extra="[web]\nlockout_failures = 3\nlockout_minutes = 10\n")
    return app, seed(app, sample_video)


@pytest.fixture
def lite(make_app, sqlite_url: str, sample_video):  # noqa: ANN001, ANN201
    def build(extra: str = "") -> tuple:
        base = "" if "lockout_failures" in extra else "lockout_failures = 3\n"
        app = make_app(catalog_url=sqlite_url, extra="[web]\nlockout_minutes = 10\n" + base + extra)
        return app, seed(app, sample_video)
    return build


def _refused(app, actor: str, status: int) -> list:  # noqa: ANN001
    return [e for e in events(app, action="refused") if e.actor == actor and (e.detail or {}).get("status") == status]


def _form_login(client: TestClient, username: str, password: str, **headers: str):  # noqa: ANN202
    token = CSRF_RE.search(client.get("/login").text).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf": token},
                       headers=headers, follow_redirects=False)


# --------------------------------------------------------------------------- inputs -> 400/404
def test_huge_ids_answer_404_and_are_logged(site) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app), raise_server_exceptions=True) as client:
        csrf = login(client, "rev")
        assert client.get(f"/media/{HUGE}").status_code == 404
        assert client.get(f"/media/{HUGE}/stream").status_code == 404
        assert client.get(f"/derivatives/{HUGE}").status_code == 404
        r = client.post(f"/links/{HUGE}/unlink", data={"csrf": csrf, "reason": "probe"})
        assert r.status_code == 404
        r = client.post(f"/review/{HUGE}/resolve", data={"csrf": csrf, "reason": "probe"})
        assert r.status_code == 404
    assert len(_refused(app, "rev", 404)) == 5
    with app.catalog.session() as s:
        assert verify_chain(s).ok


def test_audit_paging_with_a_huge_or_bad_seq_is_400_and_logged(site) -> None:  # noqa: ANN001
    app, _ = site
    with TestClient(create_app(app)) as client:
        login(client, "aud")
        assert client.get(f"/audit?before={HUGE}").status_code == 400
        assert client.get("/audit?before=-5").status_code == 400
        r = client.get("/audit?before=abc")
        assert r.status_code == 400 and "Traceback" not in r.text
        assert client.get("/audit?media_id=9999999999").status_code == 400  # beyond PostgreSQL's INTEGER
        assert client.get("/audit?before=3").status_code == 200
    assert len(_refused(app, "aud", 400)) == 4


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_range_with_thousands_of_digits_is_not_a_500(site) -> None:  # noqa: ANN001
    app, sd = site
    digits = "9" * 5000
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        r = client.get(f"/media/{sd.media_u1}/stream", headers={"Range": f"bytes={digits}-"})
        assert r.status_code == 416
        r = client.get(f"/media/{sd.media_u1}/stream", headers={"Range": f"bytes=0-{digits}"})
        assert r.status_code == 206 and r.content == sd.video_bytes
        r = client.get(f"/media/{sd.media_u1}/stream", headers={"Range": f"bytes=-{digits}"})
        assert r.status_code == 206 and r.content == sd.video_bytes
    refused = [e for e in events(app, action="streamed") if e.outcome == "refused"]
    assert len(refused) == 1


def test_a_60000_character_search_is_400_and_logged(site) -> None:  # noqa: ANN001
    app, _ = site
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        r = client.get("/search", params={"enterprise": "x" * 60000})
        assert r.status_code == 400
        assert client.get("/search", params={"enterprise": "东方"}).status_code == 200
    assert len(_refused(app, "rev", 400)) == 1


# --------------------------------------------------------------------------- missing objects
@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_stream_of_an_object_missing_from_the_store_fails_without_paths(site) -> None:  # noqa: ANN001
    app, sd = site
    with app.catalog.session() as s:
        key = s.get(Media, sd.media_u1).storage_key
    path = app.store.local_path(key)
    path.parent.chmod(0o755)
    path.chmod(0o644)
    path.unlink()
    root = str(app.settings.storage.url).replace("file://", "")
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        login(client, "rev")
        for route in ("stream", "download"):
            r = client.get(f"/media/{sd.media_u1}/{route}", headers={"Range": "bytes=0-99"})
            assert r.status_code == 500, r.text
            assert "/" + path.name not in r.text and str(path.parent) not in r.text and root not in r.text
            assert "missing" in r.text
    streamed = events(app, action="streamed") + events(app, action="downloaded")
    assert streamed and all(e.outcome == "failed" for e in streamed)
    assert "missing" in streamed[0].detail["reason"]
    # A keyframe image the store lost: the same (no path, logged as failed).
    with app.catalog.session() as s:
        frame_key = s.get(Derivative, sd.frames[0]).storage_key
    frame = app.store.local_path(frame_key)
    frame.parent.chmod(0o755)
    frame.chmod(0o644)
    frame.unlink()
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        login(client, "rev")
        r = client.get(f"/derivatives/{sd.frames[0]}")
        assert r.status_code == 500 and str(frame.parent) not in r.text and frame.name not in r.text
    viewed = [e for e in events(app, action="viewed") if e.subject == f"derivative:{sd.frames[0]}"]
    assert [e.outcome for e in viewed] == ["failed"]


# --------------------------------------------------------------------------- flooding
def test_anonymous_flood_is_limited_and_aggregated(lite) -> None:  # noqa: ANN001
    app, _ = lite("anonymous_per_minute_per_address = 50\n")
    before = len(events(app, action="refused"))
    statuses = []
    with TestClient(create_app(app)) as client:
        for _ in range(300):
            statuses.append(client.get("/search", follow_redirects=False).status_code)
    assert statuses.count(429) == 250 and statuses.count(401) + statuses.count(303) == 50
    rows = events(app, action="refused")[before:]
    # One event when the flood began, one with the count when the app stopped; not 300.
    assert len(rows) == 2, [r.detail for r in rows]
    assert rows[-1].detail["count"] == 299 and rows[-1].actor == "anonymous"
    with app.catalog.session() as s:
        assert verify_chain(s).ok


def test_login_attempts_are_rate_limited_per_address(lite) -> None:  # noqa: ANN001
    app, _ = lite("login_per_minute_per_address = 5\nlockout_failures = 100\n")
    with TestClient(create_app(app)) as client:
        got = [_form_login(client, f"nobody{i}", "wrong-password").headers["location"] for i in range(8)]
    assert sum("error=rate" in g for g in got) == 3
    assert len([e for e in events(app, action="login") if e.outcome == "refused"]) == 5


def test_password_checks_are_bounded(lite) -> None:  # noqa: ANN001
    app, _ = lite("password_checks_at_once = 1\nlogin_per_minute_per_address = 100\n"
                  "login_per_minute_per_account = 100\nlockout_failures = 100\n")
    api = create_app(app)
    results: list[str] = []

    def one(i: int) -> None:
        with TestClient(api, client=(f"198.51.100.{i}", 4000)) as c:
            results.append(_form_login(c, "rev", f"wrong password {i}").headers["location"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all("error=failed" in r for r in results)
    assert api.state.guards.passwords.peak == 1


# --------------------------------------------------------------------------- lockout and login errors
def test_an_outsider_cannot_lock_out_a_known_account(lite) -> None:  # noqa: ANN001
    app, _ = lite("login_per_minute_per_account = 4\n")
    api = create_app(app)
    with TestClient(api, client=("192.0.2.10", 5000)) as admin_pc:
        login(admin_pc, "admin")  # the administrator's own machine is a known source
    with TestClient(api, client=("203.0.113.66", 6000)) as attacker:
        for i in range(3):
            assert "error=failed" in _form_login(attacker, "admin", f"guess {i}").headers["location"]
        # The name's rate limit (4 a minute) is spent by the attacker...
        assert "error=rate" in _form_login(attacker, "admin", "guess 4").headers["location"]
    with TestClient(api, client=("192.0.2.10", 5001)) as admin_pc:
        login(admin_pc, "admin")  # ...while the administrator still logs in from their own machine
    with TestClient(api, client=("203.0.113.66", 6001)) as attacker:
        api.state.guards.login_by_account.reset("admin")  # a minute later
        # Locked for the attacker's address only: even the right password fails there.
        assert "error=failed" in _form_login(attacker, "admin", PASSWORD).headers["location"]
    locks = [e for e in events(app, action="admin_change") if e.detail.get("change") == "account_locked"]
    assert locks and all(e.detail["address"] == "203.0.113.66" for e in locks)


def test_login_errors_do_not_say_whether_an_account_exists(lite) -> None:  # noqa: ANN001
    app, _ = lite()
    with TestClient(create_app(app)) as admin:
        csrf = login(admin, "admin")
        admin.post("/admin/accounts/aud/disable", data={"csrf": csrf})
    pages = []
    with TestClient(create_app(app)) as client:
        for name, pw in (("no-such-user", "whatever-pw"), ("rev", "wrong password"), ("aud", PASSWORD)):
            loc = _form_login(client, name, pw).headers["location"]
            assert "error=failed" in loc, loc
            pages.append(client.get(loc).text.split('id="login-error">')[1].split("<")[0])
    assert len(set(pages)) == 1
    reasons = [e.detail["reason"] for e in events(app, action="login") if e.outcome == "refused"]
    assert reasons[-3:] == ["no such account", "wrong password", "account disabled: disabled by admin"]


def test_ids_outside_ones_units_answer_like_missing_ones(site) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app)) as client:
        login(client, "rev2")  # covers unit 2 only
        hidden = client.get(f"/media/{sd.media_u1}/stream")
        missing = client.get("/media/2000000000/stream")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text.replace(str(sd.media_u1), "N") == missing.text.replace("2000000000", "N")
        assert client.get(f"/derivatives/{sd.frames[0]}").status_code == 404
        r = client.get(f"/cases/{sd.case_u1}")
        assert r.status_code == 404 and "no case numbered" in r.text
    scope = [e for e in events(app, action="refused") if e.actor == "rev2" and "scope" in e.detail["reason"]
             or e.actor == "rev2" and "units" in e.detail["reason"]]
    assert len(scope) == 3


def test_login_csrf_pair_made_up_by_an_attacker_is_refused(lite) -> None:  # noqa: ANN001
    app, _ = lite()
    forged = "a" * 64
    with TestClient(create_app(app)) as client:
        client.cookies.set("custody_login_csrf", forged, path="/login")
        r = client.post("/login", data={"username": "rev", "password": PASSWORD, "csrf": forged},
                        follow_redirects=False)
        assert "error=bad_form" in r.headers["location"] and "custody_session" not in client.cookies
        # A real token posted from another site's page is refused too.
        r = _form_login(client, "rev", PASSWORD, origin="https://evil.example")
        assert "error=bad_form" in r.headers["location"] and "custody_session" not in client.cookies
        login(client, "rev")


def test_refusal_digest_counts_per_address_and_minute() -> None:
    from web.guard import RefusalDigest

    written: list[tuple[str, dict]] = []
    now = [1000.0]
    digest = RefusalDigest(lambda addr, detail, subject: written.append((addr, detail)), clock=lambda: now[0])
    for i in range(100):
        digest.refuse("192.0.2.1", f"GET /p{i % 3}", "not logged in")
    digest.refuse("192.0.2.2", "GET /", "not logged in")
    assert [a for a, _ in written] == ["192.0.2.1", "192.0.2.2"]
    assert not digest.has_due()
    now[0] += 61
    assert digest.has_due()
    digest.flush(force=False)
    assert written[-1][0] == "192.0.2.1" and written[-1][1]["count"] == 99
    assert sum(written[-1][1]["paths"].values()) == 99 and len(written) == 3
