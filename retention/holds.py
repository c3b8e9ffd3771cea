"""Legal holds on a recording, a case, a device or an officer.

A hold blocks deletion of every recording it covers, whatever the rules say, until it
is released.  Holds are never deleted: a release keeps who, when and why.  Placing or
releasing a hold re-applies the store's legal-hold flag to each covered recording.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor
from core.errors import CustodyError, NotFound
from catalog import custody_log
from catalog.models import Case, Device, Hold, Media, MediaLink, Officer, utcnow
from retention.load import decide_many, find_media, load_holds
from retention.lock import apply_decision
from retention.rules import rules_for

TARGET_KINDS = ("media", "case", "device", "officer")


def _canonical_ref(session: Session, kind: str, ref: str) -> str:
    """Check the target exists and return the reference the hold stores."""
    if kind == "media":
        return str(find_media(session, ref).id)
    model, column, what = {
        "case": (Case, Case.case_no, "case"),
        "device": (Device, Device.serial, "device serial"),
        "officer": (Officer, Officer.badge, "officer badge"),
    }[kind]
    if session.execute(select(model).where(column == ref)).scalar_one_or_none() is None:
        raise NotFound(f"no {what} {ref!r} in the catalog")
    return ref


def covered_media(session: Session, kind: str, ref: str) -> Sequence[Media]:
    """Stored recordings a hold on (kind, ref) may cover: a superset (for a case, every link ever
    made to it or to the inspection it was opened from); the decision says which it does cover."""
    q = select(Media).where(Media.status == "stored")
    if kind == "media":
        q = q.where(Media.id == int(ref))
    elif kind == "device":
        q = q.join(Device, Device.id == Media.device_id).where(Device.serial == ref)
    elif kind == "officer":
        off = select(Officer.id).where(Officer.badge == ref).scalar_subquery()
        q = q.where((Media.officer_badge == ref) | (Media.officer_id == off))
    else:
        q = q.where(Media.id.in_(select(MediaLink.media_id).where(MediaLink.case_id.in_(_case_and_parents(session,
                                                                                                         ref)))))
    return session.execute(q.order_by(Media.id)).scalars().all()


def add_hold(session: Session, actor: Actor, kind: str, ref: str, reason: str) -> Hold:
    if kind not in TARGET_KINDS:
        raise CustodyError(f"hold target must be one of {', '.join(TARGET_KINDS)}")
    if not reason.strip():
        raise CustodyError("a hold needs a reason")
    ref = _canonical_ref(session, kind, ref.strip())
    hold = Hold(target_kind=kind, target_ref=ref, reason=reason.strip(), created_by=actor.username,
                created_at=utcnow())
    session.add(hold)
    session.flush()
    media_id = int(ref) if kind == "media" else None
    custody_log.record(session, "hold_added", actor=actor.username, media_id=media_id,
                       subject=f"{kind}:{ref}", detail={"hold_id": hold.id, "reason": hold.reason})
    return hold


def release_hold(session: Session, actor: Actor, hold_id: int, reason: str) -> Hold:
    if not reason.strip():
        raise CustodyError("releasing a hold needs a reason")
    hold = session.get(Hold, hold_id)
    if hold is None:
        raise NotFound(f"no hold #{hold_id}")
    if hold.released_at is not None:
        raise CustodyError(f"hold #{hold_id} was already released by {hold.released_by} at {hold.released_at}")
    hold.released_at, hold.released_by, hold.release_reason = utcnow(), actor.username, reason.strip()
    media_id = int(hold.target_ref) if hold.target_kind == "media" else None
    custody_log.record(session, "hold_released", actor=actor.username, media_id=media_id,
                       subject=f"{hold.target_kind}:{hold.target_ref}",
                       detail={"hold_id": hold.id, "reason": hold.release_reason})
    return hold


def mirror_hold(app: Any, session: Session, hold: Hold, actor: Actor) -> "MirrorResult":
    """Re-apply retention (store legal-hold flag) to every stored recording the hold covers.

    Call after add_hold/release_hold.  Until it runs the hold still blocks every purge
    (the decision reads the holds table); only the store's own flag lags, and the next
    plan re-applies it to every recording anyway.
    """
    rules, now = rules_for(app), utcnow()
    media = covered_media(session, hold.target_kind, hold.target_ref)
    holds = load_holds(session, now)  # once: a device or officer hold covers thousands of recordings
    covered = 0
    for i in range(0, len(media), MIRROR_BATCH):
        batch = media[i:i + MIRROR_BATCH]
        decisions = decide_many(session, batch, rules, now, holds=holds)
        for m in batch:
            d = apply_decision(app, session, m, decisions[m.id], now=now, actor=actor.username)
            covered += any(h.id == hold.id for h in d.holds)
    return MirrorResult(checked=len(media), covered=covered)


MIRROR_BATCH = 500


@dataclass(frozen=True)
class MirrorResult:
    checked: int  # recordings whose retention and store flags were re-applied
    covered: int  # of those, the ones this hold now covers (0 once released)


def _case_and_parents(session: Session, case_no: str) -> list[int]:
    """The case and the cases it was opened from (a penalty case's inspection): their footage
    is this case's footage too."""
    out: list[int] = []
    case = session.execute(select(Case).where(Case.case_no == case_no)).scalar_one_or_none()
    while case is not None and case.id not in out and len(out) < 16:
        out.append(case.id)
        case = session.get(Case, case.parent_case_id) if case.parent_case_id else None
    return out


def list_holds(session: Session, include_released: bool = False) -> Sequence[Hold]:
    q = select(Hold).order_by(Hold.id)
    if not include_released:
        q = q.where(Hold.released_at.is_(None))
    return session.execute(q).scalars().all()


def hold_json(h: Hold) -> dict[str, Any]:
    def iso(d: Any) -> str | None:
        return d.isoformat() if d else None

    return {"id": h.id, "target_kind": h.target_kind, "target_ref": h.target_ref, "reason": h.reason,
            "created_by": h.created_by, "created_at": iso(h.created_at), "released_by": h.released_by,
            "released_at": iso(h.released_at), "release_reason": h.release_reason,
            "active": h.released_at is None}
