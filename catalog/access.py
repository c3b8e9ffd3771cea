"""Which cases and recordings a viewer may see (reviewers can be limited to units).

An account with no units covers every unit.  A limited account sees a case when the
case's unit is one of its units, and a recording when the recording was made in one
of its units or is actively linked to a case it may see (evidence follows the case).
Cases and recordings with no unit are visible only to unlimited accounts.
"""
from __future__ import annotations

from sqlalchemy import Select, exists, false, or_, select, true
from sqlalchemy.orm import Session

from catalog.accounts import Actor
from catalog.models import Case, Media, MediaLink, Unit


def unit_id_filter(units: tuple[str, ...]):  # noqa: ANN201 - SQL expression
    return select(Unit.id).where(Unit.code.in_(units)).scalar_subquery()


def case_visible_clause(actor: Actor):  # noqa: ANN201 - SQL expression
    if not actor.units:
        return true()
    return Case.unit_id.in_(select(Unit.id).where(Unit.code.in_(actor.units)))


def media_visible_clause(actor: Actor):  # noqa: ANN201 - SQL expression
    if actor.role == "inspector":
        # Inspectors see only their own recordings: the account's officer number (`users add
        # --badge`), else the account name taken as the officer number.
        return Media.officer_badge == (actor.badge or actor.username)
    if not actor.units:
        return true()
    linked_to_visible_case = exists(
        select(MediaLink.id).join(Case, Case.id == MediaLink.case_id)
        .where(MediaLink.media_id == Media.id, MediaLink.active.is_(True), case_visible_clause(actor)))
    return or_(Media.unit_code.in_(actor.units), linked_to_visible_case)


def scope_cases(q: Select, actor: Actor) -> Select:
    return q.where(case_visible_clause(actor))


def scope_media(q: Select, actor: Actor) -> Select:
    return q.where(media_visible_clause(actor))


def can_see_case(s: Session, actor: Actor, case: Case) -> bool:
    if not actor.units:
        return actor.role != "inspector"
    return s.execute(select(Case.id).where(Case.id == case.id, case_visible_clause(actor))).first() is not None


def can_see_media(s: Session, actor: Actor, media: Media) -> bool:
    clause = media_visible_clause(actor) if actor.role != "system" else false()
    return s.execute(select(Media.id).where(Media.id == media.id, clause)).first() is not None
