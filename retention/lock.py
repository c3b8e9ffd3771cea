"""Mirror retention decisions into the store's write-once protection.

Each stored recording gets a retain-until equal to its computed keep-until (S3 Object
Lock in the configured mode; LocalStore keeps the same in its `_locks/` sidecar) and a
legal-hold flag that mirrors the holds covering it.  Retain-until dates are only ever
extended: a shorter decision leaves the longer lock standing, and the sweep then waits
for it.  Recordings kept permanently or open-endedly (an open case) are locked for a
rolling horizon (`retention.open_ended_lock_days`) that each apply renews, because a
COMPLIANCE lock to the year 9999 could never be lifted once the case closes.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.errors import CustodyError
from catalog import custody_log
from catalog.models import Media, utcnow
from catalog.objrecord import record_key
from retention.decide import Decision
from retention.load import decide_one
from retention.rules import Rules, rules_for


def lock_target(decision: Decision, lock_until: datetime | None, now: datetime, horizon_days: int) -> datetime | None:
    """The retain-until to set now, or None when the current lock is already long enough."""
    if decision.keep_until is None:
        # Renew the rolling horizon once less than half of it is left (not on every call).
        if lock_until is not None and lock_until - now > timedelta(days=horizon_days / 2):
            return None
        target = now + timedelta(days=horizon_days)
    else:
        target = decision.keep_until
    if target <= now or (lock_until is not None and target <= lock_until):
        return None  # nothing to protect any more, or never shorten
    return target


def _set_lock(app: Any, media: Media, until: datetime) -> None:
    app.store.set_retention(media.storage_key, until, app.settings.storage.object_lock_mode)
    _record_too(app, media, lambda key: app.store.set_retention(key, until, app.settings.storage.object_lock_mode))


def _record_too(app: Any, media: Media, apply: Any) -> None:
    """The recording's object record (catalog.objrecord, issue 17) is locked and held with it."""
    key = record_key(media.storage_key)
    if app.store.head(key) is not None:
        apply(key)


def apply_retention(app: Any, session: Session, media: Media, *, now: datetime | None = None,
                    rules: Rules | None = None, actor: str | None = None) -> Decision:
    """Decide, cache the decision on the Media row, and extend the store's lock and legal hold.

    Called after a recording is stored or relinked, when a hold or tag changes, and by
    each plan.  A store that refuses (no Object Lock on the bucket) is logged as a failed
    custody event and does not stop the caller; the catalog decision still stands.
    """
    now = now or utcnow()
    decision = decide_one(session, media, rules or rules_for(app), now)
    return apply_decision(app, session, media, decision, now=now, actor=actor)


def shortens(media: Media, decision: Decision) -> bool:
    """Is this decision shorter than the one cached on the row?"""
    if media.keep_rule is None:
        return False  # never decided before
    if media.keep_until is None:
        return decision.keep_until is not None
    return decision.keep_until is not None and decision.keep_until < media.keep_until


def apply_decision(app: Any, session: Session, media: Media, decision: Decision, *, now: datetime,
                   actor: str | None = None, confirm_shorter: bool = False) -> Decision:
    """apply_retention for a decision already made (plans decide in batches).

    The cached decision (Media.keep_until/keep_rule) is only lengthened here; a shorter
    one is confirmed by the next retention plan (`confirm_shorter`), which lists it as
    `keep_until_shortened` so that no shortening reaches a purge unseen.
    """
    actor = actor or f"station:{app.settings.station.name}"
    if confirm_shorter or not shortens(media, decision):
        media.keep_until, media.keep_rule = decision.keep_until, decision.rule
    if media.status != "stored" or not app.settings.retention.apply_locks:
        return decision
    target = lock_target(decision, media.lock_until, now, app.settings.retention.open_ended_lock_days)
    hold_change = decision.held != bool(media.legal_hold_applied)
    if target is None and not hold_change:
        return decision
    detail: dict[str, Any] = {"key": media.storage_key, "mode": app.settings.storage.object_lock_mode}
    try:
        if target is not None:
            _set_lock(app, media, target)
            media.lock_until = target
            detail["retain_until"] = target.isoformat()
        if hold_change:
            app.store.set_legal_hold(media.storage_key, decision.held)
            _record_too(app, media, lambda key: app.store.set_legal_hold(key, decision.held))
            media.legal_hold_applied = decision.held
            detail["legal_hold"] = decision.held
    except CustodyError as e:
        custody_log.record(session, "retention_locked", actor=actor, media_id=media.id, outcome="failed",
                           subject=f"media:{media.id}", detail={**detail, "error": str(e)})
        return decision
    detail.update(keep_until=decision.keep_until.isoformat() if decision.keep_until else None,
                  rule=decision.rule)
    custody_log.record(session, "retention_locked", actor=actor, media_id=media.id,
                       subject=f"media:{media.id}", detail=detail)
    return decision
