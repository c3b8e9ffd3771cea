"""Retention plans: what would be deleted, why, and what changed since the last plan.

A plan lists every stored recording that is past its keep-until, under no hold and not
locked in the store.  Nothing is deleted by making a plan; only a plan approved by a
second administrator is ever swept.  Each item says how it changed against the
baseline plan (the last approved or swept plan, else the last plan): a rule shortened
in `retention.toml` marks the items it newly exposes `rule_shortened`, never a silent
deletion.  Making a plan also refreshes each recording's cached decision and extends
its store lock (retain-until is never shortened).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor
from core.errors import CustodyError, NotFound, PermissionDenied
from catalog import custody_log
from catalog.models import Media, RetentionPlan, RetentionPlanItem, utcnow
from retention.decide import Decision, decide
from retention.load import Facts, load_facts, load_holds
from retention.lock import apply_decision, shortens
from retention.rules import Rules, compare_rules, rules_from_dict, rules_for

BATCH = 500
OPEN_STATES = ("draft", "approved")


@dataclass
class Tally:
    stored: int = 0
    deletable: int = 0
    held: int = 0
    permanent: int = 0
    store_locked: int = 0
    not_yet_due: int = 0
    changes: dict[str, int] = field(default_factory=dict)
    locked_items: list[dict[str, Any]] = field(default_factory=list)


def _stored_batches(session: Session) -> Iterator[list[Media]]:
    last = 0
    while True:
        rows = session.execute(select(Media).where(Media.status == "stored", Media.id > last)
                               .order_by(Media.id).limit(BATCH)).scalars().all()
        if not rows:
            return
        yield list(rows)
        last = rows[-1].id


def baseline_plan(session: Session) -> RetentionPlan | None:
    """The plan changes are reported against: the last one someone approved, else the last one."""
    approved = session.execute(select(RetentionPlan).where(RetentionPlan.state.in_(("approved", "swept")))
                               .order_by(RetentionPlan.id.desc()).limit(1)).scalar_one_or_none()
    if approved is not None:
        return approved
    return session.execute(select(RetentionPlan).order_by(RetentionPlan.id.desc()).limit(1)).scalar_one_or_none()


def _interrupted(session: Session) -> RetentionPlanItem | None:
    return session.execute(select(RetentionPlanItem).where(RetentionPlanItem.state == "deleting").limit(1)
                           ).scalar_one_or_none()


SHORTENED = ("rule_shortened", "keep_until_shortened")


@dataclass(frozen=True)
class Baseline:
    """What the new plan is compared with."""

    rules: Rules | None  # the baseline plan's rule snapshot
    listed: set[int]  # media the baseline plan listed
    flagged: dict[int, str]  # shortenings shown by unapproved plans since


def _change(m: Media, d: Decision, facts: Facts, base: Baseline, now: datetime) -> str:
    if base.rules is not None:
        before = decide(facts.recording, facts.links, (), facts.tags, now, base.rules)
        if before.keep_until is None or before.keep_until > now:
            return "rule_shortened"
    if shortens(m, d):
        return "keep_until_shortened"  # a fact changed (tag removed, link removed, case dates)
    if m.id in base.flagged:
        return base.flagged[m.id]  # flagged by a plan nobody approved: keep showing it
    return "unchanged" if m.id in base.listed else "new"


def _tally(t: Tally, m: Media, d: Decision, change: str | None, now: datetime) -> bool:
    """Count the recording; True when the plan lists it for deletion."""
    t.stored += 1
    if not d.expired:
        _count_kept(t, _why_kept(d))
        return False
    if _store_locked(m, now):
        # Due by the rules, but the store will refuse until its lock passes: shown, not listed.
        t.store_locked += 1
        if len(t.locked_items) < 500:
            t.locked_items.append({"media_id": m.id, "lock_until": m.lock_until.isoformat(),
                                   "keep_until": d.keep_until.isoformat() if d.keep_until else None,
                                   "change": change, "reason": d.reason})
        return False
    t.deletable += 1
    t.changes[change or "new"] = t.changes.get(change or "new", 0) + 1
    return True


def _flagged_since(session: Session, base: RetentionPlan | None) -> dict[int, str]:
    """Shortenings shown by plans nobody approved since the last approval (all, if none was)."""
    q = select(RetentionPlanItem.media_id, RetentionPlanItem.change).where(RetentionPlanItem.change.in_(SHORTENED))
    if base is not None and base.state in ("approved", "swept"):
        q = q.where(RetentionPlanItem.plan_id > base.id)
    return dict(session.execute(q.order_by(RetentionPlanItem.id)).all())


def _why_kept(d: Decision) -> str:
    if d.held:
        return "held"
    return "permanent" if d.keep_until is None else "not_yet_due"


def _count_kept(t: Tally, why: str) -> None:
    setattr(t, why, getattr(t, why) + 1)


def _store_locked(m: Media, now: datetime) -> bool:
    return m.lock_until is not None and m.lock_until > now


def create_plan(app: Any, session: Session, actor: Actor, *, now: datetime | None = None,
                rules: Rules | None = None) -> RetentionPlan:
    now = now or utcnow()
    rules = rules or rules_for(app)
    if (stuck := _interrupted(session)) is not None:
        raise CustodyError(f"plan {stuck.plan_id} was interrupted mid-sweep; run `custody retention sweep` "
                           "to finish it before making a new plan")
    base = baseline_plan(session)
    snapshot = base.summary.get("rules") if base else None
    old_rules = rules_from_dict({"classes": snapshot}, rules.tz) if snapshot else None
    listed_before = set(session.execute(select(RetentionPlanItem.media_id)
                                        .where(RetentionPlanItem.plan_id == base.id)).scalars()) if base else set()
    flagged = _flagged_since(session, base)
    for old in session.execute(select(RetentionPlan).where(RetentionPlan.state.in_(OPEN_STATES))).scalars():
        old.state = "superseded"
        custody_log.record(session, "plan_superseded", actor=actor.username, subject=f"plan:{old.id}")
    plan = RetentionPlan(state="draft", created_by=actor.username, created_at=now, as_of=now,
                         rules_digest=rules.digest, summary={})
    session.add(plan)
    session.flush()
    tally, listed = Tally(), set()
    holds = load_holds(session, now)
    baseline = Baseline(old_rules, listed_before, flagged)
    for batch in _stored_batches(session):
        facts = load_facts(session, batch)
        for m in batch:
            d = decide(facts[m.id].recording, facts[m.id].links, holds, facts[m.id].tags, now, rules)
            change = _change(m, d, facts[m.id], baseline, now) if d.expired else None
            apply_decision(app, session, m, d, now=now, actor=actor.username, confirm_shorter=True)
            if _tally(tally, m, d, change, now):
                session.add(RetentionPlanItem(plan_id=plan.id, media_id=m.id, keep_until=d.keep_until, rule=d.rule,
                                              reason=d.reason, change=change, state="pending"))
                listed.add(m.id)
        session.flush()
    plan.summary = _summary(session, rules, base, old_rules, tally, listed_before - listed, now)
    custody_log.record(session, "plan_created", actor=actor.username, subject=f"plan:{plan.id}",
                       detail={"plan_id": plan.id, "items": tally.deletable, "rules_digest": rules.digest,
                               "changes": tally.changes, "rules_changes": plan.summary["rules_changes"]})
    return plan


def _summary(session: Session, rules: Rules, base: RetentionPlan | None, old_rules: Rules | None, t: Tally,
             dropped_ids: set[int], now: datetime) -> dict[str, Any]:
    dropped = []
    for mid in sorted(dropped_ids)[:500]:
        m = session.get(Media, mid)
        why = "purged" if m is None or m.status == "purged" else "no longer due (held, re-decided or store-locked)"
        dropped.append({"media_id": mid, "why": why})
    return {
        "rules": rules.as_dict(),
        "rules_source": rules.source,
        "baseline_plan": base.id if base else None,
        "rules_changes": compare_rules(old_rules.as_dict(), rules) if old_rules else [],
        "counts": {"stored": t.stored, "deletable": t.deletable, "held": t.held, "permanent": t.permanent,
                   "not_yet_due": t.not_yet_due, "store_locked": t.store_locked},
        "changes": t.changes,
        "store_locked_items": t.locked_items,
        "no_longer_listed": dropped,
    }


def get_plan(session: Session, plan_id: int) -> RetentionPlan:
    plan = session.get(RetentionPlan, plan_id)
    if plan is None:
        raise NotFound(f"no retention plan {plan_id}")
    return plan


def plan_items(session: Session, plan_id: int) -> list[RetentionPlanItem]:
    return list(session.execute(select(RetentionPlanItem).where(RetentionPlanItem.plan_id == plan_id)
                                .order_by(RetentionPlanItem.id)).scalars())


def approve_plan(app: Any, session: Session, actor: Actor, plan_id: int) -> RetentionPlan:
    """A second administrator signs off; the rules must still be the ones the plan was made with."""
    plan = get_plan(session, plan_id)
    if plan.state != "draft":
        raise CustodyError(f"plan {plan_id} is {plan.state}; only a draft plan can be approved")
    if plan.created_by == actor.username:
        custody_log.record(session, "plan_approved", actor=actor.username, outcome="refused",
                           subject=f"plan:{plan.id}", detail={"why": "creator cannot approve own plan"})
        session.commit()
        raise PermissionDenied(f"plan {plan_id} was made by {actor.username}; "
                               "a different administrator must approve it")
    current = rules_for(app).digest
    if current != plan.rules_digest:
        raise CustodyError(f"the retention rules changed after plan {plan_id} was made; make a new plan")
    plan.state, plan.approved_by, plan.approved_at = "approved", actor.username, utcnow()
    custody_log.record(session, "plan_approved", actor=actor.username, subject=f"plan:{plan.id}",
                       detail={"plan_id": plan.id, "items": plan.summary.get("counts", {}).get("deletable"),
                               "created_by": plan.created_by})
    return plan
