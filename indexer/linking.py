"""Case linking (issue 4).  Stub until the linking work lands: the indexer calls
`link_recording` after it has fixed a recording's true time."""
from __future__ import annotations

from sqlalchemy.orm import Session

from custody.settings import Settings
from indexer.catalog.models import Media


def link_recording(session: Session, settings: Settings, media: Media, actor: str = "system") -> None:
    """Link one recording to the inspections it belongs to (or queue it for review)."""
    return None
