"""The facts a retention decision rests on, as plain immutable data.

`retention.decide.decide` sees only these, never the database, so the decision
can be replayed at any instant (time-travel tests, `explain --at`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Recording:
    media_id: int
    sha256: str
    recorded_start: datetime | None  # corrected UTC; None when no clock could be trusted
    stored_at: datetime
    device_serial: str | None = None
    officer_badges: tuple[str, ...] = ()  # as read on the device and of the matched officer


@dataclass(frozen=True)
class CaseFact:
    case_no: str
    kind: str  # inspection|penalty|coercive
    hazards_found: bool = False
    closed_at: datetime | None = None
    follow_up_closed_at: datetime | None = None


@dataclass(frozen=True)
class LinkFact:
    """A recording's link to a case (directly, or through a follow-on case of a linked case)."""

    case: CaseFact
    linked_at: datetime
    removed_at: datetime | None = None
    via: str | None = None  # case_no of the directly linked case when this one follows from it


@dataclass(frozen=True)
class HoldFact:
    id: int
    target_kind: str  # media|case|device|officer
    target_ref: str
    reason: str
    created_by: str
    created_at: datetime
    released_at: datetime | None = None


@dataclass(frozen=True)
class TagFact:
    tag: str
    created_by: str
    created_at: datetime
    removed_at: datetime | None = None
