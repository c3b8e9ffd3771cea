"""Reviewer flags with retention meaning (obstruction, complaint, accident...).

Only tags some rule class names are accepted, so a misspelt flag cannot leave a
clip on the routine schedule while its reviewer believes it is kept.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor
from core.errors import CustodyError, NotFound
from catalog import custody_log
from catalog.models import Media, MediaTag, utcnow
from retention.rules import Rules


def _live(session: Session, media: Media, tag: str) -> MediaTag | None:
    return session.execute(
        select(MediaTag).where(MediaTag.media_id == media.id, MediaTag.tag == tag, MediaTag.removed_at.is_(None))
    ).scalars().first()


def add_tag(session: Session, actor: Actor, media: Media, tag: str, reason: str, rules: Rules) -> MediaTag:
    tag = tag.strip().lower()
    if tag not in rules.known_tags:
        raise CustodyError(f"unknown tag {tag!r}; the retention rules know: {', '.join(sorted(rules.known_tags))}")
    if not reason.strip():
        raise CustodyError("a tag needs a reason")
    if _live(session, media, tag):
        raise CustodyError(f"recording {media.id} is already tagged {tag!r}")
    row = MediaTag(media_id=media.id, tag=tag, reason=reason.strip(), created_by=actor.username, created_at=utcnow())
    session.add(row)
    session.flush()
    custody_log.record(session, "tag_added", actor=actor.username, media_id=media.id, subject=f"media:{media.id}",
                       detail={"tag": tag, "reason": row.reason})
    return row


def remove_tag(session: Session, actor: Actor, media: Media, tag: str, reason: str) -> MediaTag:
    tag = tag.strip().lower()
    if not reason.strip():
        raise CustodyError("removing a tag needs a reason")
    row = _live(session, media, tag)
    if row is None:
        raise NotFound(f"recording {media.id} has no tag {tag!r}")
    row.removed_at, row.removed_by = utcnow(), actor.username
    custody_log.record(session, "tag_removed", actor=actor.username, media_id=media.id, subject=f"media:{media.id}",
                       detail={"tag": tag, "reason": reason.strip()})
    return row
