"""Helpers for the retention tests: accounts, stored recordings, cases and links."""
from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

from catalog.accounts import add_account, resolve_actor
from catalog.models import Case, Derivative, Device, Media, MediaLink, Officer
from storage.base import derived_key, media_key

UTC = timezone.utc


def accounts(app) -> None:  # noqa: ANN001
    """Two administrators (plan maker and approver), a reviewer and an auditor."""
    with app.catalog.session() as s:
        for name, role in (("admin1", "administrator"), ("admin2", "administrator"),
                           ("rev", "reviewer"), ("aud", "auditor")):
            add_account(s, name, role)


def actor(app, name: str):  # noqa: ANN001, ANN201
    with app.catalog.session() as s:
        return resolve_actor(s, name)


def store_recording(app, session, recorded_start: datetime | None, *, device: str | None = None,  # noqa: ANN001
                    badge: str | None = None, derivatives: int = 0, data: bytes | None = None) -> Media:
    """Put real bytes in the store and catalogue them the way the spine does."""
    data = data or os.urandom(512) + b"custody test recording"
    sha = hashlib.sha256(data).hexdigest()
    key = media_key(sha)
    app.store.put_bytes(key, data, metadata={"sha256": sha})
    dev = None
    if device:
        dev = session.query(Device).filter_by(serial=device).one_or_none() or Device(serial=device)
        session.add(dev)
        session.flush()
    off = None
    if badge:
        off = session.query(Officer).filter_by(badge=badge).one_or_none() or Officer(badge=badge)
        session.add(off)
        session.flush()
    m = Media(sha256=sha, size=len(data), kind="video", storage_key=key, original_path=f"DCIM/{sha[:8]}.mp4",
              original_name=f"{sha[:8]}.mp4", recorded_start=recorded_start, device_id=dev.id if dev else None,
              officer_id=off.id if off else None, officer_badge=badge,
              stored_at=recorded_start or datetime.now(UTC))
    session.add(m)
    session.flush()
    for i in range(derivatives):
        dkey = derived_key(sha, f"keyframe-{i:03d}.jpg")
        app.store.put_bytes(dkey, b"\xff\xd8 keyframe " + str(i).encode())
        session.add(Derivative(media_id=m.id, kind="keyframe", offset_seconds=float(i), storage_key=dkey))
    session.flush()
    return m


def make_case(session, case_no: str, kind: str = "inspection", *, hazards: bool = False,  # noqa: ANN001
              closed_at: datetime | None = None, follow_up_closed_at: datetime | None = None,
              parent: Case | None = None) -> Case:
    c = Case(case_no=case_no, kind=kind, hazards_found=hazards, closed_at=closed_at,
             follow_up_closed_at=follow_up_closed_at, status="closed" if closed_at else "open",
             parent_case_id=parent.id if parent else None)
    session.add(c)
    session.flush()
    return c


def link(session, media: Media, case: Case, at: datetime | None = None) -> MediaLink:  # noqa: ANN001
    lk = MediaLink(media_id=media.id, case_id=case.id, method="manual", reason="test", created_by="rev",
                   created_at=at or datetime.now(UTC))
    session.add(lk)
    session.flush()
    return lk


def object_present(app, key: str) -> bool:  # noqa: ANN001
    return app.store.head(key) is not None


def write_rules(path: Path, routine: str = "6 months", enforcement: str = "10 years") -> Path:
    """The default rules with the routine and enforcement durations replaced."""
    from core.settings import SHIPPED_CONFIG_DIR

    text = (SHIPPED_CONFIG_DIR / "retention.toml").read_text(encoding="utf-8")
    text = text.replace('keep = "6 months"', f'keep = "{routine}"', 1)
    text = text.replace('keep = "10 years"', f'keep = "{enforcement}"', 1)
    path.write_text(text, encoding="utf-8")
    return path
