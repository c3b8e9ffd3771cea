"""Case linking: which inspection or case each recording belongs to, and why.

Rules, in order:
1. A case number in the recording's file name or path, or in its sidecar
   (`Media.meta["sidecar"]`), links it directly (method `name` / `sidecar`, score 1.0).
2. Otherwise the officer carrying the device at the recording's corrected start (device
   assignments; else the officer named by the device's identity file) must be among a
   case's officers, and the recording's corrected interval must overlap the case window
   widened by `linking.margin_minutes`.  Only case kinds in `linking.auto_kinds` take part.
   A recording within `linking.clock_uncertain_seconds` of the window counts as inside it
   (residual clock error; case times are typed in by hand) — score 0.9; one that only
   touches the margin scores lower.
3. Doubt goes to the review queue, never to a guess: two unrelated cases match, the
   officer is unknown or not among the officers of a case happening at that time, or the
   device's clock error is unknown (no offset measured for the recording or the device).

Links made by a reviewer (method `manual`, including a manual "not this case") are never
undone or redone automatically; once a reviewer has linked a recording by hand, officer +
time matching leaves it alone (name and sidecar links still apply).  Linking re-runs whenever cases or assignments arrive
later or a recording's time is corrected (`relink_media_ids`, `relink_for_case`).
Reasons are written "中文 / English", always in that order.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from core.errors import CustodyError, NotFound
from core.settings import Settings
from catalog import custody_log
from catalog.lookup import find_media  # noqa: F401 - re-exported for callers
from catalog.models import (
    Case,
    CaseOfficer,
    Device,
    DeviceAssignment,
    Media,
    MediaLink,
    Officer,
    ReviewItem,
    utcnow,
)

STRONG_SCORE = 0.9
MARGIN_SCORE_MAX = 0.7  # touching the margin: 0.4 .. 0.7, nearer the window scores higher
MAX_CANDIDATES = 10
# Relink scans by recorded_start; a recording may start this long before the window it overlaps.
LONGEST_RECORDING = timedelta(hours=24)
# A case number in a name/sidecar is looked for in recordings this close to the case's dates.
NAME_SCAN_SLACK = timedelta(days=30)
SIDECAR_KEYS = ("case_no", "case", "caseNo", "case_number", "案件编号", "案号", "检查编号")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Proposal:
    case: Case
    method: str  # auto|name|sidecar
    score: float
    reason: str
    strong: bool = True
    gap: float = 0.0  # seconds between the recording and the case window (0: they overlap)

    def candidate(self) -> dict[str, Any]:
        return {"case_no": self.case.case_no, "score": round(self.score, 3), "reason": self.reason}


@dataclass
class LinkOutcome:
    media_id: int
    linked: list[str] = field(default_factory=list)  # case numbers now actively linked (any method)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    review: str | None = None  # reason when an open review item exists for it


@dataclass(frozen=True)
class Carrier:
    officer: Officer | None
    source: str  # assignment|identity|none
    zh: str  # how we know, for reasons
    en: str


# --------------------------------------------------------------------------- formatting
def _local(dt: datetime | None, tz: tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return dt.astimezone(tz).strftime(fmt) if dt else "?"


def _span(start: datetime | None, end: datetime | None, tz: tzinfo) -> str:
    if start and end and start.astimezone(tz).date() == end.astimezone(tz).date():
        return f"{_local(start, tz)}–{_local(end, tz, '%H:%M')}"
    return f"{_local(start, tz)}–{_local(end, tz)}"


def _bi(zh: str, en: str) -> str:
    return f"{zh} / {en}"


# --------------------------------------------------------------------------- facts about a recording
def carrier(session: Session, media: Media) -> Carrier:
    """Who carried the device when the recording started: assignments first, then identity."""
    if media.device_id is not None and media.recorded_start is not None:
        a = session.execute(
            select(DeviceAssignment).where(
                DeviceAssignment.device_id == media.device_id,
                DeviceAssignment.valid_from <= media.recorded_start,
                or_(DeviceAssignment.valid_to.is_(None), DeviceAssignment.valid_to > media.recorded_start),
            ).order_by(DeviceAssignment.valid_from.desc()).limit(1)
        ).scalar_one_or_none()
        if a is not None:
            off = session.get(Officer, a.officer_id)
            if off is not None:
                return Carrier(off, "assignment", "领用记录", "device assignment")
    off = None
    if media.officer_badge:
        # The badge as read is the authority; officer_id may hold an earlier assignment's answer.
        off = session.execute(select(Officer).where(Officer.badge == media.officer_badge)).scalar_one_or_none()
    elif media.officer_id is not None:
        off = session.get(Officer, media.officer_id)
    if off is not None:
        return Carrier(off, "identity", "设备身份文件", "identity file")
    if media.officer_badge:
        return Carrier(None, "none", f"警号 {media.officer_badge} 不在人员名册中",
                       f"badge {media.officer_badge} is not in the officer register")
    return Carrier(None, "none", "无领用记录且身份文件无警号", "no assignment and no badge in the identity file")


def clock_known(session: Session, media: Media) -> bool:
    """The device's clock error was measured for this recording or at some docking of the device."""
    if media.clock_offset_seconds is not None:
        return True
    if media.device_id is None:
        return False
    dev = session.get(Device, media.device_id)
    return dev is not None and dev.last_clock_offset_seconds is not None


DURATION_IMPLAUSIBLE = "duration_implausible"  # flag set by indexer/timing.py (issue 17)


def _interval(media: Media) -> tuple[datetime, datetime] | None:
    if media.recorded_start is None:
        return None
    end = media.recorded_end
    if end is None and media.duration_seconds:
        end = media.recorded_start + timedelta(seconds=media.duration_seconds)
    return media.recorded_start, max(end or media.recorded_start, media.recorded_start)


def _case_window(case: Case) -> tuple[datetime, datetime] | None:
    if case.start is None:
        return None
    return case.start, max(case.end or case.start, case.start)


def _gap_seconds(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> float:
    """0 when the intervals overlap, else the time between them."""
    if a[1] < b[0]:
        return (b[0] - a[1]).total_seconds()
    if b[1] < a[0]:
        return (a[0] - b[1]).total_seconds()
    return 0.0


# --------------------------------------------------------------------------- direct links
def case_numbers_in(text: str, settings: Settings) -> list[str]:
    found: list[str] = []
    for m in re.finditer(settings.linking.case_no_pattern, text):
        if m.group(0) not in found:
            found.append(m.group(0))
    return found


def _sidecar_numbers(media: Media, settings: Settings) -> list[str]:
    sidecar = (media.meta or {}).get("sidecar")
    if not sidecar:
        return []
    found: list[str] = []
    if isinstance(sidecar, dict):
        for k in SIDECAR_KEYS:
            v = sidecar.get(k)
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, str | int) and str(item).strip():
                    found.append(str(item).strip())
        text = json.dumps(sidecar, ensure_ascii=False)
    else:
        text = str(sidecar)
    return list(dict.fromkeys(found + case_numbers_in(text, settings)))


def _direct(session: Session, settings: Settings, media: Media) -> list[Proposal]:
    by_name = case_numbers_in(media.original_path or media.original_name or "", settings)
    by_sidecar = _sidecar_numbers(media, settings)
    wanted = list(dict.fromkeys(by_name + by_sidecar))
    if not wanted:
        return []
    cases = {c.case_no: c for c in session.execute(select(Case).where(Case.case_no.in_(wanted))).scalars()}
    out: list[Proposal] = []
    for no in wanted:
        case = cases.get(no)
        if case is None:
            continue  # the case may be imported later; relink_for_case finds this recording then
        if no in by_name:
            out.append(Proposal(case, "name", 1.0, _bi(f"文件名含案件编号 {no}", f"file name contains case number {no}")))
        else:
            out.append(Proposal(case, "sidecar", 1.0, _bi(f"旁注文件指明案件 {no}", f"sidecar names case {no}")))
    return out


# --------------------------------------------------------------------------- officer + time
def _overlapping_cases(session: Session, settings: Settings, rec: tuple[datetime, datetime],
                       officer_id: int | None) -> list[Case]:
    margin = timedelta(minutes=settings.linking.margin_minutes)
    q = select(Case).where(
        Case.kind.in_(settings.linking.auto_kinds),
        Case.start.is_not(None),
        Case.start <= rec[1] + margin,
        func.coalesce(Case.end, Case.start) >= rec[0] - margin,
    )
    if officer_id is not None:
        q = q.join(CaseOfficer, CaseOfficer.case_id == Case.id).where(CaseOfficer.officer_id == officer_id)
    return list(session.execute(q.order_by(Case.start, Case.id).limit(200)).scalars())


def _score(settings: Settings, rec: tuple[datetime, datetime], case: Case, who: Carrier | None,
           tz: tzinfo) -> Proposal | None:
    """How well a recording fits a case window; `who` is the matching officer (None: time only)."""
    window = _case_window(case)
    if window is None:
        return None
    gap = _gap_seconds(rec, window)
    margin_s = settings.linking.margin_minutes * 60
    if gap > margin_s:
        return None
    strong = gap <= settings.linking.clock_uncertain_seconds
    score = STRONG_SCORE if strong else 0.4 + (MARGIN_SCORE_MAX - 0.4) * (1 - gap / max(margin_s, 1))
    rec_s, win_s = _span(rec[0], rec[1], tz), _span(window[0], window[1], tz)
    if gap == 0:
        when_zh, when_en = f"录像 {rec_s} 在案件时段 {win_s} 内", f"recording {rec_s} within case window {win_s}"
    else:
        when_zh = f"录像 {rec_s} 距案件时段 {win_s} {gap / 60:.1f} 分钟"
        when_en = f"recording {rec_s} {gap / 60:.1f} min from case window {win_s}"
    if who is None or who.officer is None:
        reason = _bi(f"{case.case_no}: {when_zh}", f"{case.case_no}: {when_en}")
    else:
        b = who.officer.badge
        reason = _bi(f"自动: {b} ({who.zh}) 为 {case.case_no} 执法人员; {when_zh}",
                     f"auto: {b} ({who.en}) is an officer of {case.case_no}; {when_en}")
    return Proposal(case, "auto", round(score, 3), reason, strong, gap)


def _family(case: Case) -> int:
    """A case and the case it references (a penalty or coercive measure of an inspection) belong together."""
    return case.parent_case_id or case.id


@dataclass
class _Decision:
    links: list[Proposal] = field(default_factory=list)
    review: str | None = None
    candidates: list[Proposal] = field(default_factory=list)


def _decide(session: Session, settings: Settings, media: Media, decided: set[int], placed: bool,
            who: Carrier) -> _Decision:
    tz = settings.tz
    direct = [p for p in _direct(session, settings, media) if p.case.id not in decided]
    if direct or placed:
        return _Decision(links=direct)
    rec = _interval(media)
    if rec is None:
        return _Decision()
    if DURATION_IMPLAUSIBLE in (media.flags or []):
        # The container's duration could not be this recording's (indexer/timing.py bounds it):
        # its interval is not known, so time never links it; a person decides from the candidates.
        point = (rec[0], rec[0])
        props = [p for c in _overlapping_cases(session, settings, point, who.officer.id if who.officer else None)
                 if c.id not in decided and (p := _score(settings, point, c, who, tz))]
        why = (media.flag_reasons or {}).get(DURATION_IMPLAUSIBLE, "")
        return _Decision(review=_bi(f"录像时长不可信, 不按时间自动关联: {why}",
                                    f"implausible duration, never linked by time: {why}"), candidates=props)
    if who.officer is None:
        others = [c for c in _overlapping_cases(session, settings, rec, None) if c.id not in decided]
        props = [p for c in others if (p := _score(settings, rec, c, None, tz))]
        if not props:
            return _Decision()
        return _Decision(review=_bi(f"无法确定执法人员 ({who.zh}), 该时段有案件",
                                    f"no officer match ({who.en}) but cases were under way"),
                         candidates=props)
    props = [p for c in _overlapping_cases(session, settings, rec, who.officer.id)
             if c.id not in decided and (p := _score(settings, rec, c, who, tz))]
    if not props:
        return _no_officer_match(session, settings, media, rec, who, decided)
    if not clock_known(session, media):
        return _Decision(review=_bi("设备时钟误差未知, 时间无法确认",
                                    "clock error unknown: the device's clock offset was never measured"),
                         candidates=props)
    strong = [p for p in props if p.strong]
    chosen = strong or props
    families = {_family(p.case) for p in chosen}
    if len(families) > 1:
        nos = ", ".join(p.case.case_no for p in chosen)
        return _Decision(review=_bi(f"时段重叠的多个案件: {nos}", f"overlapping cases: {nos}"), candidates=props)
    # One family is nearest; another one just as near (a few seconds past the clock tolerance, in
    # the gap between back-to-back inspections) is no reason to pick the nearer: a person decides.
    tie = settings.linking.equal_fit_seconds
    best = min(p.gap for p in chosen)
    rivals = [p for p in props if _family(p.case) not in families and p.gap - best <= tie] if tie > 0 else []
    if not rivals:
        return _Decision(links=chosen)
    near = sorted(chosen + rivals, key=lambda p: (p.gap, p.case.case_no))
    nos = ", ".join(p.case.case_no for p in near)
    return _Decision(review=_bi(f"多个案件与录像吻合程度相近 (距离相差不超过 {tie:g} 秒): {nos}",
                                f"cases fit about equally well (distances within {tie:g} s of each other): {nos}"),
                     candidates=sorted(props, key=lambda p: (p.gap, p.case.case_no)))


def _no_officer_match(session: Session, settings: Settings, media: Media, rec: tuple[datetime, datetime],
                      who: Carrier, decided: set[int]) -> _Decision:
    """The officer is known but on none of the cases under way in their unit at that time."""
    assert who.officer is not None
    others = [c for c in _overlapping_cases(session, settings, rec, None)
              if c.id not in decided and (c.unit_id is None or who.officer.unit_id is None
                                          or c.unit_id == who.officer.unit_id)]
    props = [p for c in others if (p := _score(settings, rec, c, None, settings.tz)) and p.strong]
    if not props:
        return _Decision()
    nos = ", ".join(p.case.case_no for p in props)
    return _Decision(review=_bi(f"{who.officer.badge} 不是同时段案件 {nos} 的执法人员",
                                f"no officer match: {who.officer.badge} is not an officer of {nos} under way then"),
                     candidates=props)


# --------------------------------------------------------------------------- applying a decision
def _decided_cases(session: Session, media_id: int) -> set[int]:
    """Cases a reviewer has ruled on for this recording (linked or rejected by hand)."""
    return set(session.execute(select(MediaLink.case_id).where(
        MediaLink.media_id == media_id, MediaLink.method == "manual")).scalars())


def _log_link(session: Session, action: str, actor: str, media: Media, case: Case, **detail: Any) -> None:
    custody_log.record(session, action, actor=actor, media_id=media.id, subject=f"case:{case.case_no}",
                       detail={"case_no": case.case_no, **detail})


def _attribute(session: Session, media: Media, actor: str, who: Carrier) -> None:
    """Record who carried the device (search by officer relies on it); the badge as read stays."""
    if who.officer is None or media.officer_id == who.officer.id:
        return
    old = media.officer_id
    media.officer_id = who.officer.id
    custody_log.record(session, "attributed", actor=actor, media_id=media.id, subject=f"officer:{who.officer.badge}",
                       detail={"from_officer_id": old, "to_officer_id": who.officer.id, "source": who.source,
                               "badge_as_read": media.officer_badge})


def link_recording(session: Session, settings: Settings, media: Media, actor: str = "system") -> LinkOutcome:
    """Link one recording to the inspections it belongs to (or queue it for review).

    Idempotent: re-running with unchanged data changes nothing and logs nothing."""
    out = LinkOutcome(media.id)
    if media.status == "purged":
        return out
    who = carrier(session, media)  # once: attribution and matching ask the same question
    _attribute(session, media, actor, who)
    decided = _decided_cases(session, media.id)
    active = {ln.case_id: ln for ln in session.execute(select(MediaLink).where(
        MediaLink.media_id == media.id, MediaLink.active.is_(True))).scalars()}
    # A reviewer placed this recording by hand: officer+time matching no longer adds or removes links.
    placed = any(ln.method == "manual" for ln in active.values())
    decision = _decide(session, settings, media, decided, placed, who)
    wanted = {p.case.id: p for p in decision.links}
    for case_id, ln in active.items():
        if ln.method == "manual" or case_id in wanted or (placed and ln.method == "auto"):
            continue
        case = session.get(Case, case_id)
        assert case is not None
        why = decision.review or _bi("重新关联后不再匹配", "no longer matches after relinking")
        _deactivate(ln, actor, why)
        _log_link(session, "unlinked", actor, media, case, method=ln.method, reason=why, link_id=ln.id)
        out.removed.append(case.case_no)
    for case_id, p in wanted.items():
        ln = active.get(case_id)
        if ln is None:
            ln = MediaLink(media_id=media.id, case_id=case_id, method=p.method, score=p.score, reason=p.reason,
                           active=True, created_by=actor, created_at=utcnow())
            session.add(ln)
            session.flush()
            _log_link(session, "linked", actor, media, p.case, method=p.method, score=p.score, reason=p.reason,
                      link_id=ln.id)
            out.added.append(p.case.case_no)
        elif (ln.method, ln.score, ln.reason) != (p.method, p.score, p.reason):
            ln.method, ln.score, ln.reason = p.method, p.score, p.reason
            _log_link(session, "linked", actor, media, p.case, method=p.method, score=p.score, reason=p.reason,
                      link_id=ln.id, change="updated")
    out.review = _reconcile_review(session, media, actor, decision)
    session.flush()
    out.linked = sorted(c.case_no for c in session.execute(
        select(Case).join(MediaLink, MediaLink.case_id == Case.id).where(
            MediaLink.media_id == media.id, MediaLink.active.is_(True))).scalars())
    return out


def _deactivate(ln: MediaLink, actor: str, why: str) -> None:
    ln.active = False
    ln.removed_by = actor
    ln.removed_at = utcnow()
    ln.removed_reason = why


def _reconcile_review(session: Session, media: Media, actor: str, decision: _Decision) -> str | None:
    """One open review item per recording, kept in step with the latest decision."""
    items = list(session.execute(select(ReviewItem).where(
        ReviewItem.media_id == media.id, ReviewItem.state == "open").order_by(ReviewItem.id)).scalars())
    if decision.review:
        candidates = [p.candidate() for p in decision.candidates[:MAX_CANDIDATES]]
        item = items[0] if items else None
        if item is None:
            item = ReviewItem(media_id=media.id, reason=decision.review, candidates=candidates, state="open",
                              created_at=utcnow())
            session.add(item)
            session.flush()
            custody_log.record(session, "review_queued", actor=actor, media_id=media.id,
                               subject=f"review:{item.id}", detail={"reason": decision.review,
                                                                    "candidates": candidates})
        elif (item.reason, item.candidates) != (decision.review, candidates):
            item.reason, item.candidates = decision.review, candidates
            custody_log.record(session, "review_queued", actor=actor, media_id=media.id,
                               subject=f"review:{item.id}", detail={"reason": decision.review,
                                                                    "candidates": candidates, "change": "updated"})
        for extra in items[1:]:
            _resolve(session, extra, actor, _bi("重复条目", "duplicate entry"))
        return decision.review
    linked = ", ".join(p.case.case_no for p in decision.links)
    why = (_bi(f"已自动关联 {linked}", f"now linked automatically to {linked}") if linked
           else _bi("不再有待定案件", "no longer any doubtful case"))
    for item in items:
        _resolve(session, item, actor, why)
    return None


def _resolve(session: Session, item: ReviewItem, actor: str, resolution: str) -> None:
    item.state = "resolved"
    item.resolved_by = actor
    item.resolved_at = utcnow()
    item.resolution = resolution
    custody_log.record(session, "review_resolved", actor=actor, media_id=item.media_id,
                       subject=f"review:{item.id}", detail={"resolution": resolution})


# --------------------------------------------------------------------------- relinking
def relink_media_ids(session: Session, settings: Settings, media_ids: Iterable[int], actor: str = "system") -> int:
    """Re-run linking for these recordings (after a time correction, a new case or assignment)."""
    n = 0
    for mid in media_ids:
        media = session.get(Media, mid)
        if media is not None:
            link_recording(session, settings, media, actor=actor)
            n += 1
    return n


def media_for_case(session: Session, settings: Settings, case: Case,
                   extra_window: tuple[datetime | None, datetime | None] | None = None) -> set[int]:
    """Recordings a new or changed case may concern: in its (old or new) widened window,
    already linked to it, or naming it in their path or sidecar."""
    ids: set[int] = set(session.execute(select(MediaLink.media_id).where(
        MediaLink.case_id == case.id, MediaLink.active.is_(True))).scalars())
    margin = timedelta(minutes=settings.linking.margin_minutes)
    windows = [(case.start, case.end)] + ([extra_window] if extra_window else [])
    for start, end in windows:
        if start is None:
            continue
        lo, hi = start - margin, max(end or start, start) + margin
        ids |= set(session.execute(select(Media.id).where(
            Media.recorded_start >= lo - LONGEST_RECORDING, Media.recorded_start <= hi,
            func.coalesce(Media.recorded_end, Media.recorded_start) >= lo)).scalars())
    ids |= _media_naming(session, case)
    return ids


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _media_naming(session: Session, case: Case) -> set[int]:
    """Recordings whose path or sidecar carries this case number (near the case's dates, or undated)."""
    no = case.case_no
    escaped = json.dumps(no)[1:-1]  # how JSON stores non-ASCII text
    text_match = or_(Media.original_path.like(_like(no), escape="\\"),
                     cast(Media.meta, String).like(_like(no), escape="\\"),
                     cast(Media.meta, String).like(_like(escaped), escape="\\"))
    q = select(Media.id).where(text_match)
    if case.start is not None:
        lo, hi = case.start - NAME_SCAN_SLACK, max(case.end or case.start, case.start) + NAME_SCAN_SLACK
        q = q.where(or_(Media.recorded_start.is_(None), Media.recorded_start.between(lo, hi)))
    return set(session.execute(q).scalars())


def media_for_device(session: Session, device_id: int, start: datetime, end: datetime | None) -> set[int]:
    """Recordings of a device that started in [start, end) (an assignment's range)."""
    q = select(Media.id).where(Media.device_id == device_id, Media.recorded_start >= start)
    if end is not None:
        q = q.where(Media.recorded_start < end)
    return set(session.execute(q).scalars())


def relink_for_case(session: Session, settings: Settings, case: Case, actor: str = "system",
                    old_window: tuple[datetime | None, datetime | None] | None = None) -> int:
    return relink_media_ids(session, settings, sorted(media_for_case(session, settings, case, old_window)), actor)


# --------------------------------------------------------------------------- reviewer decisions
def find_case(session: Session, case_no: str) -> Case:
    case = session.execute(select(Case).where(Case.case_no == case_no.strip())).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case {case_no!r} (import it with `custody import cases FILE`)")
    return case


def _need_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise CustodyError("a reason is required (--reason TEXT)")
    return reason.strip()


def manual_link(session: Session, media: Media, case: Case, actor: str, reason: str) -> MediaLink:
    """A reviewer attaches a recording to a case; it supersedes any automatic link to it."""
    reason = _need_reason(reason)
    rows = session.execute(select(MediaLink).where(
        MediaLink.media_id == media.id, MediaLink.case_id == case.id, MediaLink.active.is_(True))).scalars().all()
    if any(r.method == "manual" for r in rows):
        raise CustodyError(f"recording {media.id} is already linked to {case.case_no} by hand")
    for r in rows:
        _deactivate(r, actor, _bi("由人工关联取代", "superseded by a manual link"))
    ln = MediaLink(media_id=media.id, case_id=case.id, method="manual", score=1.0, reason=reason, active=True,
                   created_by=actor, created_at=utcnow())
    session.add(ln)
    session.flush()
    _log_link(session, "linked", actor, media, case, method="manual", reason=reason, link_id=ln.id,
              superseded=[r.id for r in rows])
    _resolve_open(session, media, actor, _bi(f"人工关联 {case.case_no}: {reason}", f"linked to {case.case_no}: {reason}"))
    return ln


def manual_unlink(session: Session, media: Media, case: Case, actor: str, reason: str) -> tuple[MediaLink, int]:
    """A reviewer rules a recording out of a case (whether or not it was linked); automatic
    linking will not attach it to that case again.  Returns the ruling and how many active
    links it removed."""
    reason = _need_reason(reason)
    rows = session.execute(select(MediaLink).where(
        MediaLink.media_id == media.id, MediaLink.case_id == case.id, MediaLink.active.is_(True))).scalars().all()
    for r in rows:
        _deactivate(r, actor, reason)
    now = utcnow()
    ruling = MediaLink(media_id=media.id, case_id=case.id, method="manual", score=0.0, reason=reason, active=False,
                       created_by=actor, created_at=now, removed_by=actor, removed_at=now, removed_reason=reason)
    session.add(ruling)
    session.flush()
    _log_link(session, "unlinked", actor, media, case, method="manual", reason=reason, link_id=ruling.id,
              removed=[r.id for r in rows], was_linked=bool(rows))
    _resolve_open(session, media, actor, _bi(f"人工排除 {case.case_no}: {reason}",
                                             f"ruled out of {case.case_no}: {reason}"))
    return ruling, len(rows)


def _resolve_open(session: Session, media: Media, actor: str, resolution: str) -> None:
    for item in session.execute(select(ReviewItem).where(
            ReviewItem.media_id == media.id, ReviewItem.state == "open")).scalars():
        _resolve(session, item, actor, resolution)


def open_reviews(session: Session, limit: int | None = None) -> list[ReviewItem]:
    q = select(ReviewItem).where(ReviewItem.state == "open").order_by(ReviewItem.created_at, ReviewItem.id)
    return list(session.execute(q.limit(limit) if limit else q).scalars())
