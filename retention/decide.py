"""The retention decision: one pure function over a recording's facts and the rules.

`now` is the instant the question is asked at: a case closed, a link removed, a tag
removed or a hold released only counts once its timestamp is at or before `now`.
The longest applicable rule wins (permanent beats any date); a hold blocks
deletion whatever the rules say but does not change the computed keep-until.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from retention.facts import CaseFact, HoldFact, LinkFact, Recording, TagFact
from retention.rules import RuleClass, Rules


@dataclass(frozen=True)
class Applied:
    """One rule that applies to the recording, with the keep-until it alone would give."""

    rule: str
    keep_until: datetime | None  # None = permanent
    reason: str


@dataclass(frozen=True)
class Decision:
    keep_until: datetime | None  # None = permanent
    rule: str
    reason: str
    held: bool
    holds: tuple[HoldFact, ...] = ()
    applied: tuple[Applied, ...] = field(default_factory=tuple)
    now: datetime | None = None

    @property
    def permanent(self) -> bool:
        return self.keep_until is None

    @property
    def expired(self) -> bool:
        """May be deleted now: past its keep-until and under no hold."""
        return (not self.held and self.keep_until is not None and self.now is not None
                and self.keep_until <= self.now)


def _iso(dt: datetime, rules: Rules) -> str:
    return dt.astimezone(rules.tz).strftime("%Y-%m-%d %H:%M %z")


def _active(removed_at: datetime | None, now: datetime) -> bool:
    return removed_at is None or removed_at > now


def _closed(at: datetime | None, now: datetime) -> datetime | None:
    """A close date counts only once it has happened."""
    return at if at is not None and at <= now else None


def _case_matches(rule: RuleClass, case: CaseFact) -> bool:
    if rule.case_kinds and case.kind not in rule.case_kinds:
        return False
    return rule.hazards_found is None or case.hazards_found == rule.hazards_found


def _case_rule(rule: RuleClass, link: LinkFact, now: datetime, rules: Rules) -> Applied:
    case = link.case
    via = f" (follow-on of linked case {link.via})" if link.via else ""
    if rule.trigger == "follow_up_closed":
        # A recorded follow-up date decides (not yet reached = still open); only a case
        # with no follow-up date at all falls back to the case's own close.
        if case.follow_up_closed_at is not None:
            start, what = _closed(case.follow_up_closed_at, now), "follow-up closed"
        else:
            start, what = _closed(case.closed_at, now), "case closed (no follow-up date)"
        if start is None:
            return Applied(rule.name, None, f"{rule.label}: case {case.case_no}{via} follow-up still open, kept")
    else:
        start, what = _closed(case.closed_at, now), "case closed"
        if start is None:
            return Applied(rule.name, None, f"{rule.label}: case {case.case_no}{via} has no close date, kept")
    until = rule.keep.after(start, rules.tz)
    if until is None:
        return Applied(rule.name, None, f"{rule.label}: case {case.case_no}{via}, permanent")
    return Applied(rule.name, until, f"{rule.label}: case {case.case_no}{via} {what} "
                                     f"{_iso(start, rules)} + {rule.keep.text()}")


def _recorded_rule(rule: RuleClass, rec: Recording, rules: Rules) -> Applied:
    if rec.recorded_start is not None:
        start, what = rec.recorded_start, "recorded"
    else:
        # No trustworthy recording time: count from storage, which is never earlier.
        start, what = rec.stored_at, "recording time unknown; stored"
    until = rule.keep.after(start, rules.tz)
    text = "permanent" if until is None else f"{what} {_iso(start, rules)} + {rule.keep.text()}"
    return Applied(rule.name, until, f"{rule.label}: {text}")


def _tag_rule(rule: RuleClass, tag: TagFact, rules: Rules) -> Applied:
    until = rule.keep.after(tag.created_at, rules.tz)
    text = "permanent" if until is None else f"tagged {_iso(tag.created_at, rules)} + {rule.keep.text()}"
    return Applied(rule.name, until, f"{rule.label}: tagged '{tag.tag}' by {tag.created_by}, {text}")


def applicable(recording: Recording, links: Sequence[LinkFact], tags: Sequence[TagFact],
               now: datetime, rules: Rules) -> list[Applied]:
    out: list[Applied] = []
    live_links = [lk for lk in links if _active(lk.removed_at, now)]
    live_tags = [t for t in tags if _active(t.removed_at, now)]
    for rule in rules.classes:
        if rule.trigger == "recorded":
            out.append(_recorded_rule(rule, recording, rules))
        elif rule.trigger == "tagged":
            out += [_tag_rule(rule, t, rules) for t in live_tags if t.tag in rule.tags]
        else:
            out += [_case_rule(rule, lk, now, rules) for lk in live_links if _case_matches(rule, lk.case)]
    return out


def hold_applies(hold: HoldFact, recording: Recording, links: Sequence[LinkFact]) -> bool:
    """Does this hold cover the recording?  A case hold also covers a link removed after
    the hold was placed, so unlinking cannot be used to slip a clip out of a hold."""
    ref = hold.target_ref
    if hold.target_kind == "media":
        return ref in (str(recording.media_id), recording.sha256)
    if hold.target_kind == "device":
        return recording.device_serial is not None and ref == recording.device_serial
    if hold.target_kind == "officer":
        return ref in recording.officer_badges
    if hold.target_kind == "case":
        return any(lk.case.case_no == ref and (lk.removed_at is None or lk.removed_at > hold.created_at)
                   for lk in links)
    return False


def _longest(found: list[Applied]) -> Applied:
    """Permanent beats any date; among dates the latest wins; ties keep file order."""
    best = found[0]
    for a in found[1:]:
        if best.keep_until is None:
            break
        if a.keep_until is None or a.keep_until > best.keep_until:
            best = a
    return best


def decide(recording: Recording, links: Sequence[LinkFact], holds: Sequence[HoldFact],
           tags: Sequence[TagFact], now: datetime, rules: Rules) -> Decision:
    """Keep-until (None = permanent), the rule that decided it and why, and whether a hold stands."""
    found = applicable(recording, links, tags, now, rules)
    best = _longest(found)
    standing = tuple(h for h in holds if _active(h.released_at, now) and hold_applies(h, recording, links))
    reason = best.reason
    if standing:
        names = "; ".join(f"hold #{h.id} on {h.target_kind} {h.target_ref} by {h.created_by}: {h.reason}"
                          for h in standing)
        reason += f" — held ({names})"
    return Decision(keep_until=best.keep_until, rule=best.rule, reason=reason, held=bool(standing),
                    holds=standing, applied=tuple(found), now=now)
