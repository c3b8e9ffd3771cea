"""Sharing (issue 18): who may share what with whom, and the recipient's link — expiry, revocation,
access code, download limit, each refusal in the custody log; packages valid for bagit-python."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bagit
import pytest
from fastapi.testclient import TestClient

from catalog.models import Media, Share
from disclose import share as shares
from web.app import create_app
from web_support import events, login, sample_video, seed  # noqa: F401
from share_support import add_copy, approve, create, run_cli, token_of, unzip


@pytest.fixture
def site(make_app, catalog_url: str, sample_video):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=catalog_url)
    return app, seed(app, sample_video)


def refusals(app, **detail) -> list:  # noqa: ANN001, ANN003
    return [e for e in events(app) if e.outcome == "refused" and e.action.startswith("share")
            and all((e.detail or {}).get(k) == v for k, v in detail.items())]


def test_originals_only_to_courts_and_only_with_the_right(site) -> None:  # noqa: ANN001
    app, sd = site
    # A reviewer without the grant: refused and logged.
    r = run_cli(app, "--user", "rev", "share", "create", f"case:{sd.case_u1}", "--to", "区人民法院", "--kind", "court",
                "--originals")
    assert r.exit_code == 4, r.output
    assert "no right to share originals" in r.output
    assert len(refusals(app, kind="court", content="originals")) == 1
    # Only an administrator grants it, never to itself.
    assert run_cli(app, "--user", "rev", "share", "grant", "rev", "--reason", "case officer").exit_code == 4
    assert run_cli(app, "--user", "admin", "share", "grant", "admin", "--reason", "me").exit_code == 4
    assert run_cli(app, "--user", "admin", "share", "grant", "rev", "--reason", "复议案件承办人").exit_code == 0
    # Even with the right: never to the public or a complainant.
    for kind in ("public", "complainant"):
        r = run_cli(app, "--user", "rev", "share", "create", str(sd.media_u1), "--to", "someone", "--kind", kind,
                    "--originals")
        assert r.exit_code == 4, r.output
        assert len(refusals(app, kind=kind, content="originals")) == 1
    out = create(app, "rev", f"case:{sd.case_u1}", "--to", "区人民法院", "--kind", "court", "--originals",
                 "--expires", "7d")
    assert [i["media_id"] for i in out["items"]] == [sd.media_u1]
    with app.catalog.session() as s:
        assert out["items"][0]["sha256"] == s.get(Media, sd.media_u1).sha256
    ev = [e for e in events(app, action="share_created") if e.outcome == "ok"]
    assert {e.media_id for e in ev} == {None, sd.media_u1} and all(e.actor == "rev" for e in ev)
    # A reviewer limited to unit 2 cannot share unit 1's case, even named by recording.
    assert run_cli(app, "--user", "admin", "share", "grant", "rev2", "--reason", "x y z").exit_code == 0
    r = run_cli(app, "--user", "rev2", "share", "create", str(sd.media_u1), "--to", "法院", "--kind", "court",
                "--originals")
    assert r.exit_code == 4, r.output
    # After the grant is taken away, refused again.
    assert run_cli(app, "--user", "admin", "share", "ungrant", "rev").exit_code == 0
    r = run_cli(app, "--user", "rev", "share", "create", str(sd.media_u1), "--to", "法院", "--kind", "court",
                "--originals")
    assert r.exit_code == 4
    # Auditors and inspectors cannot share at all.
    assert run_cli(app, "--user", "aud", "share", "create", str(sd.media_u1), "--to", "x", "--kind", "public").exit_code == 4


def test_unapproved_copy_cannot_be_shared(site) -> None:  # noqa: ANN001
    app, sd = site
    copy = add_copy(app, sd.media_u1, approved=False)
    r = run_cli(app, "--user", "rev", "share", "create", f"media:{copy}", "--to", "隐患曝光台", "--kind", "public")
    assert r.exit_code == 4, r.output
    assert "not been approved" in r.output
    assert len(refusals(app, reason_code="unapproved", media_id=copy)) == 1
    # Not to a court either, and not through its case.
    r = run_cli(app, "--user", "rev", "share", "create", f"media:{copy}", "--to", "法院", "--kind", "court")
    assert r.exit_code == 4
    r = run_cli(app, "--user", "rev", "share", "create", f"case:{sd.case_u1}", "--to", "公众", "--kind", "public")
    assert r.exit_code == 4 and "not yet approved" in r.output
    # An original given with --redacted means its approved copies; there are none yet.
    with app.catalog.session() as s:
        assert s.query(Share).count() == 0
    approve(app, copy)
    out = create(app, "rev", f"case:{sd.case_u1}", "--to", "隐患曝光台", "--kind", "public", "--redacted")
    assert [i["media_id"] for i in out["items"]] == [copy] and out["items"][0]["original_media_id"] == sd.media_u1
    # A derived copy is not an original.
    r = run_cli(app, "--user", "admin", "share", "grant", "rev", "--reason", "court cases")
    r = run_cli(app, "--user", "rev", "share", "create", f"media:{copy}", "--to", "法院", "--kind", "court", "--originals")
    assert r.exit_code == 1 and "derived copy" in r.output


def test_link_code_download_limit_revocation_and_expiry(site, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd = site
    run_cli(app, "--user", "admin", "share", "grant", "rev", "--reason", "行政复议")
    out = create(app, "rev", f"case:{sd.case_u1}", "--to", "区行政复议办公室", "--kind", "reconsideration",
                 "--originals", "--code", "--downloads", "1", "--expires", "2d")
    token, code, sid = token_of(out), out["code"], out["id"]
    assert len(code) == 8 and code.isdigit() and len(token) >= 40
    with app.catalog.session() as s:  # only hashes are kept
        sh = s.get(Share, sid)
        assert sh.token_hash == shares.token_hash(token) and code not in (sh.code_hash or "")
    client = TestClient(create_app(app), headers={"user-agent": "PackageFetcher/1.0"})
    page = client.get(f"/s/{token}")
    assert page.status_code == 200 and 'id="code-form"' in page.text and sd.case_u1 not in page.text
    # No code yet: the package is refused (and logged).
    assert client.get(f"/s/{token}/package").status_code == 401
    assert len(refusals(app, reason="code_required")) == 1
    wrong = client.post(f"/s/{token}", data={"code": "00000000" if code != "00000000" else "11111111"})
    assert wrong.status_code == 401 and "访问码错误" in wrong.text
    assert len(refusals(app, reason="wrong_code")) == 1
    ok = client.post(f"/s/{token}", data={"code": code}, follow_redirects=False)
    assert ok.status_code == 303
    page = client.get(f"/s/{token}")
    assert page.status_code == 200 and out["items"][0]["sha256"] in page.text
    viewed = events(app, action="share_viewed")
    assert viewed and viewed[-1].actor == "recipient" and viewed[-1].remote_addr == "testclient"
    assert viewed[-1].detail["user_agent"] == "PackageFetcher/1.0" and viewed[-1].subject == f"share:{sid}"
    # The one download: a BagIt package bagit-python validates, holding the original byte for byte.
    pkg = client.get(f"/s/{token}/package")
    assert pkg.status_code == 200 and pkg.headers["content-type"] == "application/zip"
    bag_dir = unzip(pkg.content, tmp_path)
    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # raises BagValidationError on any problem
    payload = [p for p in (bag_dir / "data" / "recordings").iterdir() if p.suffix == ".mp4"]
    assert len(payload) == 1 and payload[0].read_bytes() == sd.video_bytes
    info = json.loads((bag_dir / "data" / "share.json").read_text("utf-8"))
    assert info["recipient"] == "区行政复议办公室" and info["kind"] == "reconsideration"
    downloads = [e for e in events(app, action="share_downloaded")]
    assert {e.media_id for e in downloads} == {None, sd.media_u1}
    assert all(e.remote_addr == "testclient" and e.detail["user_agent"] == "PackageFetcher/1.0" for e in downloads)
    # The limit: a second download is refused and logged; the page says so.
    again = client.get(f"/s/{token}/package")
    assert again.status_code == 410 and "下载次数已用完" in again.text
    assert len(refusals(app, reason="used_up")) == 1
    # The sharer sees all of it, and the receipt lists items, hashes, sizes and the download.
    r = run_cli(app, "--user", "rev", "share", "show", str(sid), "--json")
    shown = json.loads(r.output)
    acts = [(e["action"], e["outcome"]) for e in shown["events"]]
    assert ("share_viewed", "ok") in acts and ("share_downloaded", "ok") in acts and ("share_refused", "refused") in acts
    assert shown["downloads"] == 1 and shown["state"] == "used_up"
    receipt = tmp_path / "receipt.html"
    assert run_cli(app, "--user", "rev", "share", "receipt", str(sid), "--out", str(receipt)).exit_code == 0
    html = receipt.read_text("utf-8")
    assert "证据分享回执" in html and out["items"][0]["sha256"] in html and str(len(sd.video_bytes)) in html
    assert "PackageFetcher/1.0" in html and "区行政复议办公室" in html
    listed = run_cli(app, "--user", "rev", "share", "list").output
    assert "used_up" in listed and "区行政复议办公室" in listed
    assert run_cli(app, "--user", "rev2", "share", "list").output.count("\n") == 1  # only its own: none
    en = run_cli(app, "--user", "rev", "share", "receipt", str(sid), "--lang", "en").output
    assert "Evidence disclosure receipt" in en
    # Another account may not read it (and that is logged); the auditor may.
    assert run_cli(app, "--user", "rev2", "share", "show", str(sid)).exit_code == 4
    assert run_cli(app, "--user", "aud", "share", "show", str(sid)).exit_code == 0
    # Revoked: the link says so, in the recipient's language, and the attempt is logged.
    assert run_cli(app, "--user", "rev", "share", "revoke", str(sid), "--reason", "复议已结束").exit_code == 0
    gone = client.get(f"/s/{token}")
    assert gone.status_code == 410 and "已被分享方撤销" in gone.text
    client.cookies.set("lang", "en")
    assert "revoked by the sender" in client.get(f"/s/{token}").text
    assert len(refusals(app, reason="revoked")) == 2
    # A made-up link is unknown (and logged).
    assert client.get("/s/not-a-real-token").status_code == 404
    assert [e for e in refusals(app, reason="unknown") if e.subject == "share:unknown"]


def test_expiry_and_code_lockout(site) -> None:  # noqa: ANN001
    app, sd = site
    copy = add_copy(app, sd.media_u1, approved=True)
    out = create(app, "rev", str(copy), "--to", "投诉人 王某", "--kind", "complainant", "--code", "--expires", "1h")
    token, sid = token_of(out), out["id"]
    client = TestClient(create_app(app))
    for i in range(shares.CODE_ATTEMPTS):
        r = client.post(f"/s/{token}", data={"code": f"9{i:07d}"})
    assert r.status_code == 429  # the fifth wrong code locks it
    assert len(refusals(app, reason="wrong_code")) == shares.CODE_ATTEMPTS
    # Locked: even the right code is refused for now (logged).
    r = client.post(f"/s/{token}", data={"code": out["code"]})
    assert r.status_code == 429 and len(refusals(app, reason="code_locked")) == 1
    with app.catalog.session() as s:
        s.get(Share, sid).code_locked_until = datetime.now(timezone.utc) - timedelta(seconds=1)
    assert client.post(f"/s/{token}", data={"code": out["code"]}, follow_redirects=False).status_code == 303
    assert client.get(f"/s/{token}").status_code == 200
    # Expired: the link says when, and the attempt is logged.
    with app.catalog.session() as s:
        s.get(Share, sid).expires_at = datetime.now(timezone.utc) - timedelta(minutes=1)
    r = client.get(f"/s/{token}")
    assert r.status_code == 410 and "已于" in r.text and "过期" in r.text
    assert client.get(f"/s/{token}/package").status_code == 410
    assert len(refusals(app, reason="expired")) == 2
    assert shares.parse_expiry("7d") == timedelta(days=7)
    for bad in ("7", "0d", "400d", "soon"):
        with pytest.raises(Exception):
            shares.parse_expiry(bad)


def test_redacted_package_carries_the_log_and_the_originals_hash(site, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd = site
    copy = add_copy(app, sd.media_u1, approved=True)
    out = create(app, "rev", f"case:{sd.case_u1}", "--to", "隐患曝光台", "--kind", "public", "--downloads", "2")
    client = TestClient(create_app(app))
    pkg = client.get(f"/s/{token_of(out)}/package")
    assert pkg.status_code == 200
    bag_dir = unzip(pkg.content, tmp_path)
    bagit.Bag(str(bag_dir)).validate()
    files = sorted(p.name for p in (bag_dir / "data" / "redacted").iterdir())
    assert len(files) == 2 and not (bag_dir / "data" / "recordings").exists()
    meta = json.loads(next((bag_dir / "data" / "redacted").glob("*.json")).read_text("utf-8"))
    with app.catalog.session() as s:
        orig, derived = s.get(Media, sd.media_u1), s.get(Media, copy)
        assert meta["original"]["sha256"] == orig.sha256 and meta["sha256"] == derived.sha256
    assert meta["redaction"]["approved_by"] == "admin" and meta["redaction"]["log"]["mute"] == [[1.0, 2.0]]
    assert "original_path" not in json.dumps(meta) and "DSJ0001" not in json.dumps(meta)  # nothing identifying
    for p in (bag_dir / "data").rglob("*"):  # the original's bytes never leave
        assert not p.is_file() or p.read_bytes() != sd.video_bytes


def test_web_share_from_the_case_page(site) -> None:  # noqa: ANN001
    app, sd = site
    add_copy(app, sd.media_u1, approved=True)
    client = TestClient(create_app(app))
    csrf = login(client, "rev")
    page = client.get(f"/cases/{sd.case_u1}")
    assert 'id="share-form"' in page.text and 'id="sync"' in page.text
    r = client.post("/shares", data={"csrf": csrf, "targets": f"case:{sd.case_u1}", "recipient": "隐患曝光台",
                                     "kind": "public", "content": "redacted", "expires": "3d", "code": "1",
                                     "downloads": "1"})
    assert r.status_code == 200 and 'id="share-link"' in r.text and 'id="share-code-value"' in r.text
    # Originals to the public from the web: refused, logged, with the reason on the page.
    r = client.post("/shares", data={"csrf": csrf, "targets": f"case:{sd.case_u1}", "recipient": "公众",
                                     "kind": "public", "content": "originals", "expires": "3d"})
    assert r.status_code == 403
    assert refusals(app, via="web", content="originals")
    assert 'id="share-form"' in client.get(f"/media/{sd.media_u1}").text
    listing = client.get("/shares")
    assert listing.status_code == 200 and "隐患曝光台" in listing.text
    with app.catalog.session() as s:
        sid = s.query(Share).one().id
    detail = client.get(f"/shares/{sid}")
    assert detail.status_code == 200 and 'id="share-revoke"' in detail.text
    assert client.post(f"/shares/{sid}/revoke", data={"csrf": csrf, "reason": "误发"},
                       follow_redirects=False).status_code == 303
    assert client.get(f"/shares/{sid}/receipt").status_code == 200
    with app.catalog.session() as s:
        assert s.get(Share, sid).revoked_by == "rev"


def test_damaged_store_object_is_not_sent_nor_counted(site) -> None:  # noqa: ANN001
    app, sd = site
    copy = add_copy(app, sd.media_u1, approved=True)
    out = create(app, "rev", f"media:{copy}", "--to", "公众", "--kind", "public", "--downloads", "1")
    with app.catalog.session() as s:
        key = s.get(Media, copy).storage_key
    path = app.store.local_path(key)
    assert path is not None
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # one flipped byte in the store
    path.write_bytes(bytes(data))
    client = TestClient(create_app(app), raise_server_exceptions=False)
    r = client.get(f"/s/{token_of(out)}/package")
    assert r.status_code == 500 and r.headers["content-type"] != "application/zip"
    failed = [e for e in events(app, action="share_downloaded") if e.outcome == "failed"]
    assert len(failed) == 1 and "SHA-256" in failed[0].detail["error"]
    with app.catalog.session() as s:
        assert s.get(Share, out["id"]).downloads == 0  # the recipient's one download is not used up
