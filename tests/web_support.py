"""Shared seed data and helpers for the web tests (imported by tests/test_web_*.py).

The seed is a small but real catalog: two units, officers, devices, one inspection
case per unit, a real H.264 recording stored in the object store with keyframe JPEGs,
links, a review item, and one account per role (passwords all PASSWORD).
"""
from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from catalog.accounts import add_account
from catalog.app import App
from catalog.models import (
    Case,
    CaseOfficer,
    CustodyEvent,
    Derivative,
    Device,
    Media,
    MediaLink,
    Officer,
    ReviewItem,
    Unit,
)
from storage.base import derived_key, media_key
from storage.fixity import sha256_file

PASSWORD = "correct horse 8"
CST = timezone(timedelta(hours=8))
CASE_U1 = "应急检〔2026〕001号"
CASE_U2 = "应急检〔2026〕002号"
U1, U2 = "330100000001", "330100000002"
ROLE_USERS = {"administrator": "admin", "reviewer": "rev", "auditor": "aud", "inspector": "P00001"}


@dataclass
class Seed:
    case_u1: str = CASE_U1
    case_u2: str = CASE_U2
    media_u1: int = 0  # the real video, linked to CASE_U1
    media_u2: int = 0  # a small recording in unit 2, linked to CASE_U2
    media_orphan: int = 0  # unit 1, linked to nothing, in the review queue
    link_u1: int = 0
    review_id: int = 0
    frames: list[int] = field(default_factory=list)
    video_bytes: bytes = b""


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory: pytest.TempPathFactory, ffmpeg_ok: None) -> Path:
    """A 4-second 320x240 H.264/AAC MP4 with a keyframe every second (seekable)."""
    from ingest.simulate import make_video

    path = tmp_path_factory.mktemp("video") / "REC_20260312_093000.mp4"
    return make_video(path, seconds=4.0, gop=25, extra=["-movflags", "+faststart"])


def jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), color).save(buf, "JPEG")
    return buf.getvalue()


def _store_media(app: App, s, data_path: Path | None, data: bytes | None, **fields) -> Media:  # noqa: ANN001
    import hashlib

    if data_path is not None:
        sha, size = sha256_file(data_path), data_path.stat().st_size
        app.store.put_file(media_key(sha), data_path, sha, size)
    else:
        assert data is not None
        sha, size = hashlib.sha256(data).hexdigest(), len(data)
        app.store.put_bytes(media_key(sha), data)
    m = Media(sha256=sha, size=size, storage_key=media_key(sha), **fields)
    s.add(m)
    s.flush()
    return m


def seed(app: App, video: Path) -> Seed:
    out = Seed(video_bytes=video.read_bytes())
    t0 = datetime(2026, 3, 12, 9, 30, tzinfo=CST)
    with app.catalog.session() as s:
        u1 = Unit(code=U1, name="应急管理局执法大队")
        u2 = Unit(code=U2, name="街道办事处")
        s.add_all([u1, u2])
        s.flush()
        o1 = Officer(badge="P00001", name="张伟", unit_id=u1.id, cert_no="C-1")
        o2 = Officer(badge="P00002", name="李娜", unit_id=u1.id, cert_no="C-2")
        o3 = Officer(badge="P00003", name="王芳", unit_id=u2.id, cert_no="C-3")
        d1 = Device(serial="DSJ0001", kind="camera", unit_id=u1.id)
        d2 = Device(serial="DSJ0002", kind="camera", unit_id=u2.id)
        s.add_all([o1, o2, o3, d1, d2])
        s.flush()
        c1 = Case(case_no=CASE_U1, enterprise="东方化工有限公司", address="工业路1号", unit_id=u1.id,
                  start=t0, end=t0 + timedelta(hours=1))
        c2 = Case(case_no=CASE_U2, enterprise="西城物流", unit_id=u2.id, start=t0, end=t0 + timedelta(hours=1))
        s.add_all([c1, c2])
        s.flush()
        s.add_all([CaseOfficer(case_id=c1.id, officer_id=o1.id), CaseOfficer(case_id=c1.id, officer_id=o2.id),
                   CaseOfficer(case_id=c2.id, officer_id=o3.id)])
        common = dict(kind="video", original_path="DCIM/100/REC_20260312_093000.mp4",
                      original_name="REC_20260312_093000.mp4", device_start_text="2026-03-12 09:30:05",
                      device_start=t0 + timedelta(seconds=5), recorded_start=t0 + timedelta(minutes=1),
                      duration_seconds=4.0, time_source="filename", clock_offset_seconds=5.0,
                      clock_offset_source="dock")
        m1 = _store_media(app, s, video, None, device_id=d1.id, officer_id=o1.id, officer_badge="P00001",
                          unit_code=U1, **common)
        m2 = _store_media(app, s, None, b"unit two recording bytes" * 100, device_id=d2.id, officer_id=o3.id,
                          officer_badge="P00003", unit_code=U2,
                          **{**common, "original_name": "B.mp4", "original_path": "B.mp4"})
        m3 = _store_media(app, s, None, b"orphan recording" * 50, device_id=d1.id, officer_id=o2.id,
                          officer_badge="P00002", unit_code=U1,
                          **{**common, "original_name": "C.mp4", "original_path": "C.mp4",
                             "recorded_start": t0 + timedelta(hours=5)})
        l1 = MediaLink(media_id=m1.id, case_id=c1.id, method="auto", score=0.92,
                       reason="officer P00001 on the inspection; recorded within its window")
        l2 = MediaLink(media_id=m2.id, case_id=c2.id, method="auto", score=0.9, reason="officer on inspection")
        s.add_all([l1, l2])
        s.flush()
        for i, off in enumerate((0.0, 1.0, 2.0, 3.0)):
            key = derived_key(m1.sha256, f"keyframe-{i:03d}.jpg")
            app.store.put_bytes(key, jpeg((40 * i, 100, 200)), content_type="image/jpeg")
            d = Derivative(media_id=m1.id, kind="keyframe", offset_seconds=off, storage_key=key, width=160,
                           height=120, reason="interval")
            s.add(d)
            s.flush()
            out.frames.append(d.id)
        r = ReviewItem(media_id=m3.id, reason="two inspections overlap the recording",
                       candidates=[{"case_no": CASE_U1, "score": 0.5, "reason": "same officer"}])
        s.add(r)
        s.flush()
        for role, name in ROLE_USERS.items():
            add_account(s, name, role, password=PASSWORD, created_by="test")
        add_account(s, "rev2", "reviewer", password=PASSWORD, units=[U2], created_by="test")
        out.media_u1, out.media_u2, out.media_orphan = m1.id, m2.id, m3.id
        out.link_u1, out.review_id = l1.id, r.id
    return out


# --------------------------------------------------------------------------- HTTP helpers
CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def login(client, username: str, password: str = PASSWORD) -> str:  # noqa: ANN001 - TestClient
    """Log in through the form (with its CSRF cookie); return the session's CSRF token."""
    page = client.get("/login")
    token = CSRF_RE.search(page.text).group(1)
    r = client.post("/login", data={"username": username, "password": password, "csrf": token, "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    assert "error=" not in r.headers["location"], r.headers["location"]
    home = client.get(r.headers["location"], follow_redirects=True)
    return CSRF_RE.search(home.text).group(1)


def events(app: App, **where) -> list[CustodyEvent]:  # noqa: ANN003
    with app.catalog.session() as s:
        q = select(CustodyEvent).order_by(CustodyEvent.seq)
        for k, v in where.items():
            q = q.where(getattr(CustodyEvent, k) == v)
        return list(s.execute(q).scalars())


def have_chromium() -> bool:
    return Path("/usr/bin/chromium").exists() and shutil.which("ffmpeg") is not None


# --------------------------------------------------------------------------- language checks
_BARE_TAG = re.compile(r"<(th|dt|h1|h2|h3|button|option|figcaption)\b[^>]*>\s*([A-Za-z][A-Za-z /_-]*?)\s*</\1>")
_BARE_LABEL = re.compile(r"<label\b[^>]*>\s*([A-Za-z][A-Za-z /_-]*?)\s*<(?:input|select)")


def bare_english(html: str) -> list[str]:
    """Headers, labels, buttons and options whose whole text is an English word (untranslated UI)."""
    return [m.group(2) for m in _BARE_TAG.finditer(html)] + [m.group(1) for m in _BARE_LABEL.finditer(html)]


def use_language(client, lang: str) -> None:  # noqa: ANN001 - TestClient
    r = client.get(f"/lang?to={lang}&next=/login", follow_redirects=False)
    assert r.status_code == 303
