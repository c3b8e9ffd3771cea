"""The enforcement system's API (issue 15) against a real `custody serve`: case push with the
checks of `custody import`, all or nothing, relinking, a case's recordings, OpenAPI, and the log."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from catalog.models import Case, CustodyEvent, MediaLink, Officer
from field_support import Server, wait_state
from tusclient.client import TusClient

CASE_NO = "(津东)应急检〔2026〕0355号"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request, make_app, tmp_path):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=None if request.param == "sqlite" else request.getfixturevalue("pg_url"))
    srv = Server(app.settings.config_path, tmp_path).start()
    srv.app = app
    srv.cli("users", "add", "admin", "--role", "administrator", "--password-stdin", stdin="admin-password-1\n")
    srv.cli("--user", "admin", "users", "add", "rev", "--role", "reviewer", "--password-stdin",
            stdin="review-password-1\n")
    yield srv
    srv.stop()


def _token(srv: Server, account: str) -> str:
    out = json.loads(srv.cli("--user", "admin", "api-token", "issue", account, "--name", "执法系统", "--json").stdout)
    assert out["account"] == account and out["token"].startswith("cat_")
    return out["token"]


def _post(srv: Server, kind: str, token: str, rows: object) -> httpx.Response:
    return httpx.post(f"{srv.url}/api/v1/{kind}", headers={"Authorization": f"Bearer {token}"},
                      content=json.dumps(rows, ensure_ascii=False, indent=1).encode(), timeout=60)


def test_case_push_all_or_nothing_relinks_and_serves_recordings(server: Server, tmp_path: Path, ffmpeg_ok) -> None:  # noqa: ANN001
    token = _token(server, "admin")
    r = _post(server, "officers", token, [{"badge": "310001", "name": "张三", "unit_code": None},
                                          {"badge": "310002", "name": "李四"}])
    assert r.status_code == 200 and r.json()["report"]["created"] == 2, r.text
    assert _post(server, "devices", token, [{"serial": "T300001", "kind": "移动执法终端"}]).status_code == 200
    assert _post(server, "assignments", token, [{"device_serial": "T300001", "officer_badge": "310001",
                                                 "valid_from": "2026-11-01"}]).status_code == 200

    # a terminal uploads a recording made during the inspection, before the case exists
    clip = tmp_path / "VID_20261128_093000.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10",
                    "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=60)
    device_token = server.enrol("T300001", "--user", "admin")
    up = TusClient(f"{server.url}/api/v1/uploads/", headers={"Authorization": f"Bearer {device_token}"}).uploader(
        str(clip), chunk_size=1 << 20,
        metadata={"filename": clip.name, "device_clock": datetime.now(timezone(timedelta(hours=8))).isoformat()})
    up.upload()
    media_id = int(wait_state(up.url, device_token).headers["custody-media-id"])

    # a case with one bad row changes nothing: every problem is reported with its line
    bad = [{"case_no": CASE_NO, "record_id": "R-2026-0355", "officers": "310001,310002", "kind": "检查",
            "enterprise": "某化工有限公司", "start": "2026-11-28 09:00", "end": "2026-11-28 10:00"},
           {"case_no": "(津东)应急检〔2026〕0356号", "officers": "310001,399999", "start": "2026-11-28 11:00"}]
    r = _post(server, "cases", token, bad)
    assert r.status_code == 422 and r.json()["ok"] is False
    errors = r.json()["errors"]
    assert len(errors) == 1 and "399999" in errors[0]["message"] and errors[0]["line"] > 1
    with server.app.catalog.session() as s:
        assert s.execute(select(func.count()).select_from(Case)).scalar() == 0
        assert s.execute(select(func.count()).select_from(MediaLink)).scalar() == 0

    # the good row alone is taken, and linking re-runs: the field recording joins the case
    r = _post(server, "cases", token, bad[:1])
    assert r.status_code == 200, r.text
    rep = r.json()["report"]
    assert rep["created"] == 1 and rep["relinked"] >= 1 and rep["file"].startswith("api:POST /api/v1/cases")
    with server.app.catalog.session() as s:
        link = s.execute(select(MediaLink).where(MediaLink.media_id == media_id, MediaLink.active.is_(True))).scalar_one()
        assert s.get(Case, link.case_id).record_id == "R-2026-0355"

    # recordings by record id or case number: what `custody search --case … --json` prints
    cli = json.loads(server.cli("--user", "admin", "search", "--case", CASE_NO, "--json").stdout)
    assert [row["id"] for row in cli] == [media_id]
    for ref in ("R-2026-0355", CASE_NO):
        got = httpx.get(f"{server.url}/api/v1/cases/{ref}/recordings", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)
        assert got.status_code == 200 and got.json() == cli
    missing = httpx.get(f"{server.url}/api/v1/cases/NO-SUCH/recordings", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)
    assert missing.status_code == 404

    with server.app.catalog.session() as s:
        ev = s.execute(select(CustodyEvent.action, CustodyEvent.outcome, CustodyEvent.remote_addr, CustodyEvent.actor)
                       .where(CustodyEvent.action.in_(("imported", "searched"))).order_by(CustodyEvent.seq)).all()
    assert [(a, o) for a, o, _, _ in ev] == [("imported", "ok")] * 3 + [("imported", "refused"), ("imported", "ok")] \
        + [("searched", "ok")] * 2
    assert all(addr == "127.0.0.1" and actor == "admin" for _, _, addr, actor in ev if actor == "admin")


def test_api_tokens_are_checked_and_refusals_logged(server: Server) -> None:
    reviewer = _token(server, "rev")
    admin = _token(server, "admin")
    rows = [{"badge": "320001"}]
    assert _post(server, "officers", "cat_unknown", rows).status_code == 401
    assert httpx.post(f"{server.url}/api/v1/officers", json=rows, timeout=10).status_code == 401
    r = _post(server, "officers", reviewer, rows)
    assert r.status_code == 403 and "may not import" in r.json()["error"]
    # a reviewer's token may read a case's recordings; nobody's token may upload recordings
    assert httpx.get(f"{server.url}/api/v1/cases/X/recordings", headers={"Authorization": f"Bearer {reviewer}"},
                     timeout=10).status_code == 404
    assert httpx.post(f"{server.url}/api/v1/uploads/", headers={"Authorization": f"Bearer {admin}",
                                                               "Tus-Resumable": "1.0.0", "Upload-Length": "1"},
                      timeout=10).status_code == 401
    token_id = json.loads(server.cli("--user", "admin", "api-token", "list", "--json").stdout)[1]["id"]
    server.cli("--user", "admin", "api-token", "revoke", str(token_id))
    assert _post(server, "officers", admin, rows).status_code == 401
    with server.app.catalog.session() as s:
        assert s.execute(select(func.count()).select_from(Officer)).scalar() == 0
        refused = s.execute(select(CustodyEvent).where(CustodyEvent.action == "refused")).scalars().all()
    reasons = [e.detail.get("reason") for e in refused if e.detail.get("via") == "api"]
    assert "unknown token" in reasons and "no bearer token" in reasons and "revoked token" in reasons
    assert any("may not import" in (r or "") for r in reasons)

    doc = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10).json()
    for path in ("/api/v1/cases", "/api/v1/units", "/api/v1/officers", "/api/v1/devices", "/api/v1/assignments",
                 "/api/v1/cases/{ref}/recordings", "/api/v1/uploads/", "/api/v1/uploads/{upload_id}"):
        assert path in doc["paths"], path
    schema = doc["paths"]["/api/v1/cases"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "record_id" in schema["items"]["properties"] and schema["items"]["required"] == ["case_no", "officers", "start"]
