"""The sweep: delete exactly what an approved plan lists, re-checked item by item.

For each pending item, in order:
  1. re-decide against the holds and rules in force *now*; keep it if held, not yet
     due, or locked in the store (custody event `purge_kept`);
  2. mark the item `deleting` and log `purge_started` (committed before anything is
     deleted, so an interrupted sweep knows where it stopped);
  3. delete the recording's object, then its derivatives (keyframes, thumbnails);
  4. tombstone the catalog row (status `purged`, purged_at; hash, metadata and custody
     history stay) and log `purged`.
Re-running after a crash finishes `deleting` items first: if the object is already
gone the tombstone is completed, otherwise the item is re-checked like a pending one.
Disk space plays no part anywhere here: low disk never triggers a purge.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor
from core.errors import CustodyError, NotFound, ObjectLocked
from catalog import custody_log
from catalog.models import Derivative, Media, RetentionPlan, RetentionPlanItem, utcnow
from retention.load import decide_one
from retention.plan import get_plan
from retention.rules import Rules, rules_for

# Test hook: after the first object deletion, touch this file and stop, so a test can
# SIGKILL the sweep at its most delicate point (object gone, catalog not yet updated).
PAUSE_ENV = "CUSTODY_SWEEP_PAUSE_FILE"


@dataclass
class SweepReport:
    plan_id: int
    deleted: list[int] = field(default_factory=list)
    kept: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    rules_changed: bool = False


def _pause_hook() -> None:
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
        time.sleep(600)


def _approved_plan(session: Session, plan_id: int | None) -> RetentionPlan:
    if plan_id is not None:
        plan = get_plan(session, plan_id)
    else:
        plan = session.execute(select(RetentionPlan).where(RetentionPlan.state == "approved")
                               .order_by(RetentionPlan.id.desc()).limit(1)).scalar_one_or_none()
        if plan is None:
            raise NotFound("no approved retention plan to sweep (make one with `custody retention plan`, "
                           "then have a different administrator approve it)")
    if plan.state != "approved":
        raise CustodyError(f"plan {plan.id} is {plan.state}; only an approved plan can be swept")
    return plan


def _blocker(app: Any, session: Session, media: Media, rules: Rules, now: datetime) -> tuple[str | None, Any]:
    d = decide_one(session, media, rules, now)
    if d.held:
        return f"held: {d.reason}", d
    if d.keep_until is None or d.keep_until > now:
        return f"no longer due under current rules: {d.reason}", d
    if media.lock_until is not None and media.lock_until > now:
        return f"locked in the store until {media.lock_until.isoformat()}", d
    return None, d


def _keep(session: Session, item: RetentionPlanItem, media: Media, why: str, actor: Actor, now: datetime) -> None:
    item.state, item.note, item.processed_at = "kept", why, now
    custody_log.record(session, "purge_kept", actor=actor.username, media_id=media.id, outcome="refused",
                       subject=f"plan:{item.plan_id}", detail={"item_id": item.id, "why": why})


def _delete_objects(app: Any, key: str, derivative_keys: list[str]) -> list[str]:
    """Original first: if the store refuses it, nothing else is touched.  Returns the
    derivatives the store refused (the recording is gone, so the tombstone still follows)."""
    app.store.delete(key)
    _pause_hook()
    return _delete_derivatives(app, derivative_keys)


def _delete_derivatives(app: Any, keys: list[str]) -> list[str]:
    refused = []
    for k in keys:
        try:
            app.store.delete(k)
        except ObjectLocked as e:
            refused.append(f"{k}: {e}")
    return refused


def _tombstone(session: Session, item: RetentionPlanItem, media: Media, derivatives: list[Derivative],
               keys: list[str], actor: Actor, now: datetime, note: str | None = None) -> None:
    for dv in derivatives:
        dv.purged_at = dv.purged_at or now
    media.status, media.purged_at = "purged", now
    item.state, item.processed_at, item.note = "deleted", now, note
    custody_log.record(session, "purged", actor=actor.username, media_id=media.id, subject=f"media:{media.id}",
                       detail={"plan_id": item.plan_id, "item_id": item.id, "sha256": media.sha256,
                               "storage_key": media.storage_key, "rule": item.rule,
                               "keep_until": item.keep_until.isoformat() if item.keep_until else None,
                               "derivatives": keys, **({"note": note} if note else {})})


def _sweep_item(app: Any, item_id: int, actor: Actor, rules: Rules, now: datetime, report: SweepReport) -> None:
    with app.catalog.session() as s:
        item = s.get(RetentionPlanItem, item_id, with_for_update=True)
        plan_state = s.execute(select(RetentionPlan.state).where(RetentionPlan.id == item.plan_id)).scalar_one()
        if plan_state != "approved" and item.state == "pending":
            raise CustodyError(f"plan {item.plan_id} became {plan_state} during the sweep; stopped before "
                               f"item {item.id}")
        media = s.get(Media, item.media_id, with_for_update=True)
        derivs = list(s.execute(select(Derivative).where(Derivative.media_id == media.id)).scalars())
        if media.status == "purged":
            item.state, item.processed_at, item.note = "deleted", now, "already purged"
            report.deleted.append(media.id)
            return
        if item.state == "deleting" and app.store.head(media.storage_key) is None:
            # An interrupted sweep already deleted the object: finish the tombstone honestly.
            keys = [dv.storage_key for dv in derivs]
            refused = _delete_derivatives(app, keys)
            note = "completed after an interrupted sweep" + (f"; derivatives refused: {refused}" if refused else "")
            _tombstone(s, item, media, derivs, keys, actor, now, note=note)
            report.deleted.append(media.id)
            return
        why, _ = _blocker(app, s, media, rules, now)
        if why:
            _keep(s, item, media, why, actor, now)
            report.kept.append((media.id, why))
            return
        item.state = "deleting"
        custody_log.record(s, "purge_started", actor=actor.username, media_id=media.id,
                           subject=f"plan:{item.plan_id}", detail={"item_id": item.id, "key": media.storage_key})
        key, dkeys = media.storage_key, [dv.storage_key for dv in derivs]
    # Outside any transaction: a slow or paused store never holds catalog locks.
    try:
        refused = _delete_objects(app, key, dkeys)
    except ObjectLocked as e:
        with app.catalog.session() as s:
            item = s.get(RetentionPlanItem, item_id)
            item.state, item.note, item.processed_at = "failed", str(e), now
            custody_log.record(s, "purge_refused", actor=actor.username, media_id=item.media_id, outcome="refused",
                               subject=f"plan:{item.plan_id}", detail={"item_id": item.id, "error": str(e)})
        report.failed.append((item.media_id, str(e)))
        return
    with app.catalog.session() as s:
        item = s.get(RetentionPlanItem, item_id, with_for_update=True)
        media = s.get(Media, item.media_id, with_for_update=True)
        if media.status == "purged":  # a concurrent sweep finished it first
            report.deleted.append(media.id)
            return
        derivs = list(s.execute(select(Derivative).where(Derivative.media_id == media.id)).scalars())
        note = ("derivatives refused by the store: " + "; ".join(refused)) if refused else None
        _tombstone(s, item, media, derivs, dkeys, actor, now, note=note)
        report.deleted.append(media.id)


def sweep(app: Any, actor: Actor, *, plan_id: int | None = None, now: datetime | None = None,
          rules: Rules | None = None) -> SweepReport:
    """Sweep one approved plan (default: the latest).  Safe to re-run after any interruption."""
    now = now or utcnow()
    rules = rules or rules_for(app)
    with app.catalog.session() as s:
        plan = _approved_plan(s, plan_id)
        report = SweepReport(plan_id=plan.id, rules_changed=plan.rules_digest != rules.digest)
        # Interrupted items first: their objects may already be gone.
        todo = list(s.execute(select(RetentionPlanItem.id).where(
            RetentionPlanItem.plan_id == plan.id, RetentionPlanItem.state.in_(("deleting", "pending")))
            .order_by((RetentionPlanItem.state == "pending"), RetentionPlanItem.id)).scalars())
        custody_log.record(s, "sweep_started", actor=actor.username, subject=f"plan:{plan.id}",
                           detail={"plan_id": plan.id, "items": len(todo), "rules_changed": report.rules_changed})
    for item_id in todo:
        _sweep_item(app, item_id, actor, rules, now, report)
    with app.catalog.session() as s:
        plan = s.get(RetentionPlan, report.plan_id)
        if plan.state == "approved":
            plan.state, plan.swept_at = "swept", utcnow()
        custody_log.record(s, "plan_swept", actor=actor.username, subject=f"plan:{plan.id}",
                           detail={"plan_id": plan.id, "deleted": len(report.deleted), "kept": len(report.kept),
                                   "failed": len(report.failed)})
    return report
