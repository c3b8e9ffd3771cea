"""Custody-log writes made on behalf of a web viewer (who and from where, always)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.models import CustodyEvent
from web.auth import Viewer


def record(s: Session, viewer: Viewer, action: str, *, outcome: str = "ok", media_id: int | None = None,
           subject: str | None = None, detail: dict[str, Any] | None = None) -> CustodyEvent:
    return custody_log.record(s, action, actor=viewer.username, remote_addr=viewer.remote_addr, outcome=outcome,
                              media_id=media_id, subject=subject, detail={"via": "web", **(detail or {})})
