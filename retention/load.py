"""Read a recording's retention facts from the catalog (in batches for plans)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from catalog.lookup import find_media  # noqa: F401 - one lookup for every command
from catalog.models import Case, Device, Hold, Media, MediaLink, MediaTag, Officer
from retention.decide import Decision, decide
from retention.facts import CaseFact, HoldFact, LinkFact, Recording, TagFact
from retention.rules import Rules

MAX_FOLLOW_ON_DEPTH = 5  # inspection -> penalty -> coercive; deeper chains are data errors


@dataclass(frozen=True)
class Facts:
    recording: Recording
    links: tuple[LinkFact, ...]
    tags: tuple[TagFact, ...]


def _case_fact(c: Case) -> CaseFact:
    return CaseFact(case_no=c.case_no, kind=c.kind, hazards_found=bool(c.hazards_found),
                    closed_at=c.closed_at, follow_up_closed_at=c.follow_up_closed_at)


def _follow_ons(session: Session, case_ids: set[int]) -> dict[int, list[Case]]:
    """Cases opened from each case (parent_case_id), transitively."""
    out: dict[int, list[Case]] = defaultdict(list)
    frontier = {cid: cid for cid in case_ids}  # case id -> root linked case id
    for _ in range(MAX_FOLLOW_ON_DEPTH):
        if not frontier:
            break
        kids = session.execute(select(Case).where(Case.parent_case_id.in_(frontier))).scalars().all()
        nxt = {}
        for k in kids:
            root = frontier[k.parent_case_id]  # type: ignore[index]
            if k.id not in case_ids and all(k.id != x.id for x in out[root]):
                out[root].append(k)
                nxt[k.id] = root
        frontier = nxt
    return out


def _links(session: Session, media_ids: Sequence[int]) -> dict[int, list[LinkFact]]:
    rows = session.execute(
        select(MediaLink, Case).join(Case, Case.id == MediaLink.case_id).where(MediaLink.media_id.in_(media_ids))
    ).all()
    follow = _follow_ons(session, {c.id for _, c in rows})
    out: dict[int, list[LinkFact]] = defaultdict(list)
    for link, case in rows:
        removed = link.removed_at if not link.active else None
        if not link.active and removed is None:
            removed = link.created_at  # inactive without a date: treat as removed when made
        out[link.media_id].append(LinkFact(_case_fact(case), link.created_at, removed))
        for kid in follow.get(case.id, []):
            out[link.media_id].append(LinkFact(_case_fact(kid), link.created_at, removed, via=case.case_no))
    return out


def _tags(session: Session, media_ids: Sequence[int]) -> dict[int, list[TagFact]]:
    out: dict[int, list[TagFact]] = defaultdict(list)
    for t in session.execute(select(MediaTag).where(MediaTag.media_id.in_(media_ids))).scalars():
        out[t.media_id].append(TagFact(t.tag, t.created_by, t.created_at, t.removed_at))
    return out


def _recordings(session: Session, media: Sequence[Media]) -> dict[int, Recording]:
    dev_ids = {m.device_id for m in media if m.device_id}
    off_ids = {m.officer_id for m in media if m.officer_id}
    serials = dict(session.execute(select(Device.id, Device.serial).where(Device.id.in_(dev_ids))).all())
    badges = dict(session.execute(select(Officer.id, Officer.badge).where(Officer.id.in_(off_ids))).all())
    out = {}
    for m in media:
        b = tuple(sorted({x for x in (m.officer_badge, badges.get(m.officer_id)) if x}))
        out[m.id] = Recording(media_id=m.id, sha256=m.sha256, recorded_start=m.recorded_start,
                              stored_at=m.stored_at, device_serial=serials.get(m.device_id), officer_badges=b)
    return out


def _originals(session: Session, media: Sequence[Media]) -> dict[int, Media]:
    """Derived (redacted) copies -> the original each was made from (issue 18)."""
    want = {m.derived_from for m in media if m.derived_from is not None}
    if not want:
        return {}
    rows = {o.id: o for o in session.execute(select(Media).where(Media.id.in_(want))).scalars()}
    return {m.id: rows[m.derived_from] for m in media if m.derived_from in rows}


def load_facts(session: Session, media: Sequence[Media]) -> dict[int, Facts]:
    """A derived copy is kept as its original is: it takes the original's recording time, links
    and tags on top of its own (and decide_many gives it the original's media holds)."""
    origin = _originals(session, media)
    ids = [m.id for m in media]
    every = ids + [o.id for o in origin.values()]
    recs, links, tags = _recordings(session, media), _links(session, every), _tags(session, every)
    for i, o in origin.items():
        recs[i] = replace(recs[i], recorded_start=o.recorded_start, stored_at=o.stored_at)
        links[i] = list(links.get(i, ())) + list(links.get(o.id, ()))
        tags[i] = list(tags.get(i, ())) + list(tags.get(o.id, ()))
    return {i: Facts(recs[i], tuple(links.get(i, ())), tuple(tags.get(i, ()))) for i in ids}


def load_holds(session: Session, now: datetime) -> list[HoldFact]:
    """Holds standing at `now` (released ones are kept in the table but no longer block)."""
    rows = session.execute(select(Hold).where(or_(Hold.released_at.is_(None), Hold.released_at > now))).scalars()
    return [HoldFact(h.id, h.target_kind, h.target_ref, h.reason, h.created_by, h.created_at, h.released_at)
            for h in rows]


def decide_many(session: Session, media: Sequence[Media], rules: Rules, now: datetime,
                holds: list[HoldFact] | None = None) -> dict[int, Decision]:
    holds = load_holds(session, now) if holds is None else holds
    facts = load_facts(session, media)
    origin = _originals(session, media)
    out = {}
    for i, f in facts.items():
        own = holds
        if i in origin:  # a hold on the original covers its derived copies
            o = origin[i]
            own = holds + [replace(h, target_ref=str(i)) for h in holds
                           if h.target_kind == "media" and h.target_ref in (str(o.id), o.sha256)]
        out[i] = decide(f.recording, f.links, own, f.tags, now, rules)
    return out


def decide_one(session: Session, media: Media, rules: Rules, now: datetime) -> Decision:
    return decide_many(session, [media], rules, now)[media.id]
