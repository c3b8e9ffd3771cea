"""Field upload from other stock tus clients, and the tus core's X-HTTP-Method-Override (issue 15).

tus-js-client (Node; what Uppy and most web and React Native apps use) is installed by
`./dev test` into tests/clients with `npm ci`.  curl stands in for tus-java-client, the library
Android apps use: on a Java runtime that refuses PATCH it sends POST with
`X-HTTP-Method-Override: PATCH`, a chunked body and `Expect: 100-continue`."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from catalog.models import CustodyEvent, FieldUpload, Media
from conftest import ROOT
from field_support import Server, server_fixture, wait_state  # noqa: F401 - the `server` fixture

CLIENTS = ROOT / "tests" / "clients"
TUS_JS = CLIENTS / "node_modules" / "tus-js-client"


def _clip(tmp_path: Path, name: str, seconds: int = 2) -> Path:
    clip = tmp_path / name
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=320x240:rate=25",
                    "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=60)
    return clip


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}


def _chunks(app, upload_id: str) -> list[tuple[int, int]]:  # noqa: ANN001
    """(from, to) of every acknowledged chunk of one upload, from the custody log."""
    with app.catalog.session() as s:
        rows = s.execute(select(CustodyEvent.detail).where(CustodyEvent.action == "upload_chunk",
                                                           CustodyEvent.outcome == "ok",
                                                           CustodyEvent.subject == f"upload:{upload_id}")).scalars().all()
    return sorted((d["offset"], d["to"]) for d in rows)


@pytest.mark.skipif(shutil.which("node") is None or not TUS_JS.is_dir(),
                    reason="tus-js-client is not installed: ./dev test runs `npm ci` in tests/clients where node is")
@pytest.mark.parametrize("override", [False, True], ids=["patch", "post-override"])
def test_tus_js_client_uploads_a_recording(server: Server, tmp_path: Path, ffmpeg_ok, override: bool) -> None:  # noqa: ANN001
    clip = _clip(tmp_path, "VID_20261206_101500.mp4")
    data = clip.read_bytes()
    token = server.enrol_here(server.app, "T300001")
    chunk = 64 * 1024
    meta = {"filename": clip.name, "recorded_at": "2026-12-06T10:15:00+08:00",
            "sha256": hashlib.sha256(data).hexdigest()}
    out = subprocess.run(["node", str(CLIENTS / "tus_upload.js"), f"{server.url}/api/v1/uploads/", token, str(clip),
                          str(chunk), "1" if override else "0", json.dumps(meta)],
                         capture_output=True, text=True, timeout=120, cwd=CLIENTS)
    res = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {"ok": False, "error": out.stderr}
    assert res["ok"], res
    r = wait_state(res["url"], token)
    assert r.headers["custody-sha256"] == hashlib.sha256(data).hexdigest()
    upload_id = res["url"].rsplit("/", 1)[1]
    with server.app.catalog.session() as s:
        up = s.execute(select(FieldUpload).where(FieldUpload.upload_id == upload_id)).scalar_one()
        assert up.state == "stored" and up.sha256 == hashlib.sha256(data).hexdigest()
        media = s.get(Media, int(r.headers["custody-media-id"]))
        assert media.sha256 == up.sha256 and media.status == "stored"
    # every byte came in acknowledged chunks of the client's size, none twice, none missing
    spans = _chunks(server.app, upload_id)
    assert len(spans) == -(-len(data) // chunk)
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-i", *args], capture_output=True, text=True, timeout=60)


def _status(out: subprocess.CompletedProcess[str]) -> int:
    """The final status of a curl -i exchange (after any `100 Continue`)."""
    codes = [int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("HTTP/")]
    assert codes, out
    return codes[-1]


def test_post_with_method_override_as_android_clients_send_it(server: Server, tmp_path: Path) -> None:
    clip = _clip(tmp_path, "VID_20261206_102000.mp4")
    data = clip.read_bytes()
    half = len(data) // 2
    (tmp_path / "a.bin").write_bytes(data[:half])
    (tmp_path / "b.bin").write_bytes(data[half:])
    token = server.enrol_here(server.app, "T300002")
    r = httpx.post(f"{server.url}/api/v1/uploads/", headers={**_auth(token), "Upload-Length": str(len(data))}, timeout=10)
    assert r.status_code == 201
    url = server.url + r.headers["location"]
    java = ["-H", f"Authorization: Bearer {token}", "-H", "Tus-Resumable: 1.0.0", "-H", "X-HTTP-Method-Override: PATCH",
            "-H", "Content-Type: application/offset+octet-stream", "-H", "Transfer-Encoding: chunked",
            "-H", "Expect: 100-continue"]
    first = _curl("-X", "POST", *java, "-H", "Upload-Offset: 0", "--data-binary", f"@{tmp_path / 'a.bin'}", url)
    assert _status(first) == 204 and f"upload-offset: {half}" in first.stdout.lower(), first.stdout
    # HEAD through the override too (the offset to resume from)
    head = httpx.post(url, headers={**_auth(token), "X-HTTP-Method-Override": "HEAD"}, timeout=10)
    assert head.status_code == 200 and head.headers["upload-offset"] == str(half)
    # a stale offset is refused as for a real PATCH
    stale = _curl("-X", "POST", *java, "-H", "Upload-Offset: 0", "--data-binary", f"@{tmp_path / 'b.bin'}", url)
    assert _status(stale) == 409
    rest = _curl("-X", "POST", *java, "-H", f"Upload-Offset: {half}", "--data-binary", f"@{tmp_path / 'b.bin'}", url)
    assert _status(rest) == 204, rest.stdout
    assert wait_state(url, token).headers["custody-sha256"] == hashlib.sha256(data).hexdigest()

    # termination through the override
    r = httpx.post(f"{server.url}/api/v1/uploads/", headers={**_auth(token), "Upload-Length": "100"}, timeout=10)
    url2 = server.url + r.headers["location"]
    gone = httpx.post(url2, headers={**_auth(token), "X-HTTP-Method-Override": "DELETE"}, timeout=10)
    assert gone.status_code == 204
    assert httpx.head(url2, headers=_auth(token), timeout=10).status_code == 410
    # a POST to an upload without the header, or overriding to something else: 405 with a reason
    bare = httpx.post(url, headers=_auth(token), content=b"x", timeout=10)
    assert bare.status_code == 405 and "X-HTTP-Method-Override" in bare.text
    other = httpx.post(url, headers={**_auth(token), "X-HTTP-Method-Override": "GET"}, timeout=10)
    assert other.status_code == 405 and "'GET'" in other.text
    # a method the upload routes do not speak: 405 in plain text, not a web page (machines read it)
    put = httpx.put(url, headers=_auth(token), content=b"x", timeout=10)
    assert put.status_code == 405 and put.headers["content-type"].startswith("text/plain"), put.headers
    # the override does not open a way around the token
    anon = httpx.post(url, headers={"Tus-Resumable": "1.0.0", "X-HTTP-Method-Override": "PATCH",
                                    "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
                      content=b"x", timeout=10)
    assert anon.status_code == 401
    with server.app.catalog.session() as s:
        subjects = s.execute(select(CustodyEvent.subject).where(CustodyEvent.outcome == "refused")).scalars().all()
    assert any("PATCH (POST with X-HTTP-Method-Override)" in (x or "") for x in subjects), subjects
