"""Finding a recording from what a person types: a catalog id or a SHA-256 (prefix)."""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import CustodyError, NotFound
from catalog.models import Media


def find_media(session: Session, ref: str) -> Media:
    """A recording by catalog id or SHA-256 (a unique prefix of at least 8 hex digits will do)."""
    ref = ref.strip()
    if ref.isdigit() and len(ref) < 16:
        media = session.get(Media, int(ref))
        if media is not None:
            return media
    if re.fullmatch(r"[0-9a-fA-F]{8,64}", ref):
        rows = session.execute(select(Media).where(Media.sha256.like(ref.lower() + "%")).limit(2)).scalars().all()
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise CustodyError(f"{ref!r} matches several recordings; give more of the SHA-256")
    raise NotFound(f"no recording {ref!r} (give its id or SHA-256)")
