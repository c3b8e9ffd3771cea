"""Field upload over tus 1.0 (issue 15) against a real `custody serve`, a stock tuspy client and curl."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from catalog import custody_log
from catalog.tokens import check_device_token, enrol_device
from catalog.models import CustodyEvent, DockSession, FieldUpload, Media, Sighting, utcnow
from conftest import write_config
from field_support import Server, server_fixture, wait_state  # noqa: F401 - the `server` fixture
from ingest import field
from tusclient.client import TusClient

CLIENT = Path(__file__).resolve().parent / "tus_client_proc.py"
MB = 1 << 20


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_server(request, make_app, tmp_path):  # noqa: ANN001, ANN201
    """The server on either catalog."""
    app = make_app(catalog_url=None if request.param == "sqlite" else request.getfixturevalue("pg_url"))
    srv = Server(app.settings.config_path, tmp_path).start()
    srv.app = app
    yield srv
    srv.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}


def _offset(url: str, token: str) -> int:
    r = httpx.head(url, headers=_auth(token), timeout=10)
    assert r.status_code == 200, r
    return int(r.headers["upload-offset"])


def _wait_offset(url: str, token: str, at_least: int, proc: subprocess.Popen | None = None) -> int:
    deadline = time.time() + 120
    while True:
        try:
            off = _offset(url, token)
        except httpx.TransportError:
            off = -1
        if off >= at_least:
            return off
        assert proc is None or proc.poll() is None, "the client ended before the upload got that far"
        assert time.time() < deadline
        time.sleep(0.05)


def _actions(app, **where) -> list[str]:  # noqa: ANN001
    with app.catalog.session() as s:
        q = select(CustodyEvent.action, CustodyEvent.outcome).order_by(CustodyEvent.seq)
        return [f"{a}:{o}" for a, o in s.execute(q).all()]


def _meta(**kv: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kv.items())


def _create(srv: Server, token: str, length: int, **meta: str) -> httpx.Response:
    return httpx.post(f"{srv.url}/api/v1/uploads/", headers={**_auth(token), "Upload-Length": str(length),
                                                            "Upload-Metadata": _meta(**meta)}, timeout=10)


def _patch(url: str, token: str, offset: int, body: bytes, checksum: str | None = None) -> httpx.Response:
    h = {**_auth(token), "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    if checksum:
        h["Upload-Checksum"] = checksum
    return httpx.patch(url, headers=h, content=body, timeout=30)


def _sha_b64(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.slow
def test_200mb_upload_survives_client_kill_server_kill_and_dropped_connection(server: Server, tmp_path: Path) -> None:
    token = server.enrol("T200001")
    data = random.Random(15).randbytes(200 * MB)
    src = tmp_path / "VID_20261128_093000.mp4"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    creation = f"{server.url}/api/v1/uploads/"

    # 1. the client is killed mid-upload
    client = subprocess.Popen([sys.executable, str(CLIENT), creation, token, str(src)], stdout=subprocess.PIPE,
                              text=True)
    url = client.stdout.readline().strip()
    assert url.startswith(creation)
    _wait_offset(url, token, 40 * MB, client)
    client.kill()
    client.wait(10)
    first = _offset(url, token)
    assert 40 * MB <= first < 200 * MB and first % (8 * MB) == 0  # only whole, checked chunks are kept

    # 2. the server is SIGKILLed while the resumed client uploads
    client = subprocess.Popen([sys.executable, str(CLIENT), creation, token, str(src), url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_offset(url, token, first + 40 * MB, client)
    server.kill()
    assert client.wait(60) != 0  # the client saw the server die
    server.start()
    second = _offset(url, token)
    assert first + 40 * MB <= second < 200 * MB

    # 3. the connection drops in the middle of a PATCH body (no chunk checksum: what arrived is kept)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = (f"PATCH {url[len(server.url):]} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {second}\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {8 * MB}\r\n\r\n").encode()
        sock.sendall(head + data[second:second + 3 * MB])
        time.sleep(0.5)
    deadline = time.time() + 20
    while _offset(url, token) != second + 3 * MB:
        assert time.time() < deadline, "the bytes that arrived before the drop were not kept"
        time.sleep(0.1)

    # the stock client finishes from the durable offset
    done = subprocess.run([sys.executable, str(CLIENT), creation, token, str(src), url], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    r = wait_state(url, token)
    assert r.headers["custody-sha256"] == sha

    app = server.app
    with app.catalog.session() as s:
        media = s.execute(select(Media)).scalars().all()
        assert len(media) == 1 and media[0].sha256 == sha and media[0].size == len(data)
        assert s.execute(select(func.count()).select_from(Sighting)).scalar() == 1
        assert s.execute(select(func.count()).select_from(FieldUpload)).scalar() == 1
        ds = s.get(DockSession, media[0].first_session_id)
        assert ds.kind == "field_upload" and ds.state == "complete" and ds.device.serial == "T200001"
        assert media[0].original_name == src.name
        key = media[0].storage_key
        assert custody_log.verify_chain(s).ok
    stored = tmp_path / "objects" / key
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha  # exactly the bytes, stored once
    assert not list((tmp_path / "spool" / "uploads").glob("*.part"))
    acts = _actions(app)
    for a in ("device_enrolled:ok", "upload_created:ok", "upload_chunk:ok", "upload_status:ok", "docked:ok",
              "copied:ok", "stored:ok", "verified:ok", "session_complete:ok"):
        assert a in acts, a
    with app.catalog.session() as s:
        chunks = s.execute(select(CustodyEvent).where(CustodyEvent.action == "upload_chunk")).scalars().all()
        assert all(e.remote_addr == "127.0.0.1" and e.detail["station"] == app.station for e in chunks)
        assert max(e.detail.get("to", 0) for e in chunks) == len(data)


def test_chunk_checksum_whole_hash_termination_and_curl(any_server: Server, tmp_path: Path) -> None:
    server = any_server
    token = server.enrol_here(server.app, "T200002")
    data = random.Random(2).randbytes(3 * MB)
    sha = hashlib.sha256(data).hexdigest()

    # a chunk whose checksum does not match is refused (460) and nothing of it is written
    r = _create(server, token, len(data), filename="IMG_20261128_100000.jpg", sha256=sha)
    assert r.status_code == 201 and r.headers["tus-resumable"] == "1.0.0" and "upload-expires" in r.headers
    url = server.url + r.headers["location"]
    bad = _patch(url, token, 0, data[:MB], "sha256 " + base64.b64encode(b"\0" * 32).decode())
    assert bad.status_code == 460
    assert _offset(url, token) == 0
    assert (tmp_path / "spool" / "uploads" / f"{url.rsplit('/', 1)[1]}.part").stat().st_size == 0
    ok = _patch(url, token, 0, data[:MB], _sha_b64(data[:MB]))
    assert ok.status_code == 204 and ok.headers["upload-offset"] == str(MB)
    assert _patch(url, token, 0, data[:MB]).status_code == 409  # wrong offset
    # the rest with curl, as any HTTP client could
    rest = tmp_path / "rest.bin"
    rest.write_bytes(data[MB:])
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH",
                          "-H", f"Authorization: Bearer {token}", "-H", "Tus-Resumable: 1.0.0",
                          "-H", f"Upload-Offset: {MB}", "-H", "Content-Type: application/offset+octet-stream",
                          "--data-binary", f"@{rest}", url], capture_output=True, text=True, timeout=60)
    assert out.stdout == "204", out
    assert wait_state(url, token).headers["custody-sha256"] == sha

    # wrong whole-file hash: refused, kept out of the catalog, the bytes kept for inspection
    other = random.Random(3).randbytes(2 * MB)
    r = _create(server, token, len(other), filename="VID_20261128_110000.mp4", sha256="ab" * 32)
    url2 = server.url + r.headers["location"]
    res = _patch(url2, token, 0, other, _sha_b64(other))
    assert res.status_code == 422 and "SHA-256" in res.text
    h = httpx.head(url2, headers=_auth(token), timeout=10)
    assert h.status_code == 410 and h.headers["custody-state"] == "rejected"
    kept = tmp_path / "spool" / "uploads" / "rejected" / f"{url2.rsplit('/', 1)[1]}.part"
    assert kept.read_bytes() == other
    with server.app.catalog.session() as s:
        assert s.execute(select(Media).where(Media.sha256 == hashlib.sha256(other).hexdigest())).first() is None
        assert s.execute(select(func.count()).select_from(Media)).scalar() == 1
        up = s.execute(select(FieldUpload).where(FieldUpload.upload_id == url2.rsplit("/", 1)[1])).scalar_one()
        assert up.state == "rejected" and up.session_id is None

    # curl creates an upload too; termination removes an unfinished one
    out = subprocess.run(["curl", "-sS", "-i", "-X", "POST", "-H", f"Authorization: Bearer {token}",
                          "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Length: 100", f"{server.url}/api/v1/uploads/"],
                         capture_output=True, text=True, timeout=30)
    assert " 201" in out.stdout.splitlines()[0]
    loc = next(line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line.lower().startswith("location:"))
    assert _patch(server.url + loc, token, 0, b"x" * 10).status_code == 204
    assert httpx.delete(server.url + loc, headers=_auth(token), timeout=10).status_code == 204
    assert not (tmp_path / "spool" / "uploads" / f"{loc.rsplit('/', 1)[1]}.part").exists()
    assert httpx.head(server.url + loc, headers=_auth(token), timeout=10).status_code == 410
    # an empty file is complete at creation (stored, flagged empty: it is evidence too)
    r = _create(server, token, 0, filename="IMG_20261128_120000.jpg")
    assert r.status_code == 201 and r.headers["upload-offset"] == "0"
    empty = wait_state(server.url + r.headers["location"], token)
    assert empty.headers["custody-sha256"] == hashlib.sha256(b"").hexdigest()
    acts = _actions(server.app)
    assert "upload_chunk:refused" in acts and "upload_rejected:refused" in acts and "upload_terminated:ok" in acts
    opts = httpx.options(f"{server.url}/api/v1/uploads/", timeout=10)
    assert opts.status_code == 204 and "sha256" in opts.headers["tus-checksum-algorithm"]
    assert set(opts.headers["tus-extension"].split(",")) >= {"creation", "checksum", "termination", "expiration"}


def test_only_enrolled_devices_upload_as_themselves(any_server: Server, tmp_path: Path) -> None:
    server = any_server
    token = server.enrol("T200003")
    other = server.enrol_here(server.app, "T200004")
    r = _create(server, token, 10, filename="a.jpg")
    url = server.url + r.headers["location"]
    # a body running past Upload-Length is refused whole
    assert _patch(url, token, 0, b"0" * 20).status_code == 413
    assert _offset(url, token) == 0
    # another device's token cannot touch this upload
    assert _patch(url, other, 0, b"0123456789").status_code == 403
    assert httpx.head(url, headers=_auth(other), timeout=10).status_code == 403
    # unknown token, no token, a revoked token and a browser session are refused and logged
    assert _create(server, "cdt_not-a-token", 10).status_code == 401
    assert httpx.post(f"{server.url}/api/v1/uploads/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "1"},
                      cookies={"custody_session": "whatever"}, timeout=10).status_code == 401
    server.cli("devices", "revoke", "T200003")
    assert _create(server, token, 10).status_code == 401
    assert _patch(url, token, 0, b"0123456789").status_code == 401
    # re-enrolling gives a new token and voids the old one
    fresh = server.enrol("T200004")
    assert _create(server, other, 10).status_code == 401
    assert _create(server, fresh, 10).status_code == 201
    with server.app.catalog.session() as s:
        refused = s.execute(select(CustodyEvent).where(CustodyEvent.action == "upload_refused")).scalars().all()
    reasons = " | ".join(e.detail["reason"] for e in refused)
    assert "unknown token" in reasons and "revoked token of device T200003" in reasons
    assert "web login session" in reasons and "another device" in reasons
    assert all(e.remote_addr == "127.0.0.1" and e.outcome == "refused" for e in refused)
    assert "device_token_revoked:ok" in _actions(server.app)


def test_spool_full_refused_with_507_and_expiry_cleans_up(make_app, tmp_path: Path) -> None:
    app = make_app()
    cfg = Path(app.settings.config_path)
    cfg.write_text(cfg.read_text().replace("min_free_spool_bytes = 0", "min_free_spool_bytes = 1000000000000000"))
    srv = Server(cfg, tmp_path).start()
    try:
        token = srv.enrol_here(app, "T200005")
        r = _create(srv, token, 1000, filename="VID_1.mp4")
        assert r.status_code == 507 and "nothing was deleted" in r.text and "缓存空间不足" in r.text
        assert "upload_refused:refused" in _actions(app)
    finally:
        srv.stop()
    # expiry, in this process (the same functions the server calls)
    app2 = make_app()  # min_free_spool_bytes = 0 again
    with app2.catalog.session() as s:
        ident = check_device_token(s, token)[0]
    info = field.create_upload(app2, ident, "1000", _meta(filename="VID_2.mp4"), "10.0.0.9")
    writer = field.ChunkWriter(app2, ident, info.upload_id, 0, None, "10.0.0.9")
    writer.write(b"z" * 100)
    assert writer.commit() == 100
    upload_id = info.upload_id
    part = tmp_path / "spool" / "uploads" / f"{upload_id}.part"
    assert part.stat().st_size == 100
    assert field.expire_uploads(app2, now=utcnow() + timedelta(hours=1)) == []  # not yet
    hours = app2.settings.field_upload.upload_expiry_hours
    assert field.expire_uploads(app2, now=utcnow() + timedelta(hours=hours, minutes=1)) == [upload_id]
    assert not part.exists()
    with app2.catalog.session() as s:
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.action == "upload_expired")).scalar_one()
        assert ev.detail["offset"] == 100 and ev.detail["device"] == "T200005"
        assert s.execute(select(FieldUpload.state)).scalar_one() == "expired"


def _terminal_volume(root: Path, serial: str, name: str, data: bytes) -> Path:
    vol = root / "docks" / "TERMINAL"
    props = vol / "Android" / "data" / "cn.gov.mps.mdt" / "files"
    props.mkdir(parents=True)
    (props / "terminal.properties").write_text(f"terminal.serial={serial}\nuser.badge=310009\norg.code=120102000000\n")
    cam = vol / "DCIM" / "Camera"
    cam.mkdir(parents=True)
    (cam / name).write_bytes(data)
    old = time.time() - 600
    os.utime(cam / name, (old, old))
    return vol


def test_field_upload_then_dock_is_one_object_two_sightings(server: Server, tmp_path: Path, ffmpeg_ok) -> None:  # noqa: ANN001
    clip = tmp_path / "VID_20261128_093000.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10",
                    "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=60)
    data = clip.read_bytes()
    token = server.enrol_here(server.app, "T200006")
    client = TusClient(f"{server.url}/api/v1/uploads/", headers={"Authorization": f"Bearer {token}"})
    up = client.uploader(str(clip), chunk_size=64 * 1024, metadata={"filename": clip.name}, upload_checksum=True)
    up.upload()  # tuspy's defaults: sha1 chunk checksums
    r = wait_state(up.url, token)
    media_id = int(r.headers["custody-media-id"])
    vol = _terminal_volume(tmp_path, "T200006", clip.name, data)
    res = server.cli("ingest", str(vol), "--json", check=False)
    out = json.loads(res.stdout)
    assert [f["status"] for f in out["files"]] == ["duplicate"], out
    with server.app.catalog.session() as s:
        assert s.execute(select(func.count()).select_from(Media)).scalar() == 1
        sightings = s.execute(select(Sighting).where(Sighting.media_id == media_id)).scalars().all()
        kinds = sorted(s.get(DockSession, x.session_id).kind for x in sightings)
        assert kinds == ["dock", "field_upload"]
        assert s.execute(select(CustodyEvent).where(CustodyEvent.action == "duplicate",
                                                    CustodyEvent.media_id == media_id)).first() is not None


def _stored(app, ident, upload_id: str, data: bytes):  # noqa: ANN001, ANN202
    """Wait (30 s at most) until the upload is stored; it must hash to `data`'s SHA-256."""
    deadline = time.time() + 30
    while (st := field.status(app, ident, upload_id, None)).state != "stored":
        assert time.time() < deadline, st
        time.sleep(0.1)
    assert st.sha256 == hashlib.sha256(data).hexdigest()
    return st


def test_restart_rehashes_the_durable_prefix_and_cuts_an_unacknowledged_tail(make_app, tmp_path: Path) -> None:
    """In this process: what a restart leaves (no hasher in memory, bytes past the durable offset)."""
    app = make_app()
    with app.catalog.session() as s:
        token = enrol_device(s, "T200007", "test", app.station)[0]
    with app.catalog.session() as s:
        ident = check_device_token(s, token)[0]
    data = random.Random(7).randbytes(3 * MB + 5)
    info = field.create_upload(app, ident, str(len(data)), _meta(filename="REC_20261128_093000.m4a",
                                                                 sha256=hashlib.sha256(data).hexdigest()), None)
    w = field.ChunkWriter(app, ident, info.upload_id, 0, None, None)
    w.write(data[:MB])
    assert w.commit() == MB
    part = tmp_path / "spool" / "uploads" / f"{info.upload_id}.part"
    with part.open("ab") as f:  # a crash after the write and fsync, before the offset's commit
        f.write(b"never acknowledged" * 1000)
    field._drop_live(info.upload_id)  # the process that held the running hash is gone
    w = field.ChunkWriter(app, ident, info.upload_id, MB, None, None)
    assert part.stat().st_size == MB  # the tail was cut back to the durable offset
    w.write(data[MB:2 * MB])
    w.abort("connection dropped", keep_received=True)  # no chunk checksum: what arrived is kept
    field._drop_live(info.upload_id)
    w = field.ChunkWriter(app, ident, info.upload_id, 2 * MB, ("sha256", hashlib.sha256(data[2 * MB:]).digest()),
                          None)
    w.write(data[2 * MB:])
    assert w.commit() == len(data)
    st = _stored(app, ident, info.upload_id, data)
    with app.catalog.session() as s:
        m = s.get(Media, st.media_id)
        assert m.kind == "audio" and m.original_name == "REC_20261128_093000.m4a"
    assert hashlib.sha256((tmp_path / "objects" / m.storage_key).read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_complete_upload_left_unstored_is_stored_when_the_server_starts(make_app, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A server killed between the last PATCH and the store: the next server stores the upload
    at start, before any request arrives."""
    from fastapi.testclient import TestClient

    from web.app import create_app

    app = make_app()
    with app.catalog.session() as s:
        token = enrol_device(s, "T200008", "test", app.station)[0]
    with app.catalog.session() as s:
        ident = check_device_token(s, token)[0]
    data = random.Random(8).randbytes(MB + 3)
    info = field.create_upload(app, ident, str(len(data)), _meta(filename="REC_20261128_100000.m4a",
                                                                 sha256=hashlib.sha256(data).hexdigest()), None)
    with monkeypatch.context() as m:
        m.setattr(field, "schedule_store", lambda *a: None)  # the server dies before it stores
        w = field.ChunkWriter(app, ident, info.upload_id, 0, None, None)
        w.write(data)
        assert w.commit() == len(data)
    time.sleep(0.5)
    assert field.status(app, ident, info.upload_id, None).state == "complete"  # nothing stored it
    with TestClient(create_app(app)):  # the next server starts; no request is made
        st = _stored(app, ident, info.upload_id, data)
    with app.catalog.session() as s:
        assert s.get(Media, st.media_id).original_name == "REC_20261128_100000.m4a"
