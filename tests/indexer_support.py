"""Helpers for the indexer tests: catalog rows for recordings made with real tools.

Until the ingest spine lands, tests store the bytes themselves and create the Media
row (and its dock session / device) the way the spine will.
"""
from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from catalog.accounts import add_account
from catalog import jobs
from catalog.models import Device, DockSession, Media, Officer
from storage.base import media_key


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_device(app: Any, serial: str, profile: str | None = "gat947") -> int:
    with app.catalog.session() as s:
        dev = Device(serial=serial, profile=profile)
        s.add(dev)
        s.flush()
        return dev.id


def add_dock_session(app: Any, device_id: int | None, profile: str | None = "gat947",
                     offset: float | None = None, offset_source: str | None = None) -> int:
    with app.catalog.session() as s:
        ds = DockSession(station="test", volume_path="/vol", profile=profile, device_id=device_id,
                         clock_offset_seconds=offset, clock_offset_source=offset_source, state="complete")
        s.add(ds)
        s.flush()
        return ds.id


def add_media(app: Any, path: Path, kind: str, *, original_path: str | None = None, device_id: int | None = None,
              session_id: int | None = None, badge: str | None = None, mtime: datetime | None = None,
              job: bool = True) -> int:
    """Store the file's bytes and catalogue it as the spine does (one index job per new media)."""
    sha = sha256_of(path)
    key = media_key(sha)
    app.store.put_file(key, path, sha, path.stat().st_size)
    with app.catalog.session() as s:
        officer_id = None
        if badge:
            off = Officer(badge=badge)
            s.add(off)
            s.flush()
            officer_id = off.id
        m = Media(sha256=sha, size=path.stat().st_size, kind=kind, storage_key=key, device_id=device_id,
                  first_session_id=session_id, officer_id=officer_id, officer_badge=badge,
                  original_path=original_path or path.name, original_name=(original_path or path.name).rsplit("/", 1)[-1],
                  original_mtime=mtime)
        s.add(m)
        s.flush()
        if job:
            jobs.enqueue(s, m.id, "index")
        return m.id


def add_user(app: Any, name: str, role: str) -> None:
    with app.catalog.session() as s:
        add_account(s, name, role)


def run_cli(app: Any, *args: str, user: str | None = "admin") -> Any:
    from custody.cli import cli

    assert app.settings.config_path is not None
    base = ["--config", str(app.settings.config_path)] + (["--user", user] if user else [])
    return CliRunner().invoke(cli, base + list(args), catch_exceptions=False)


def ffmpeg(*args: str) -> None:
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
