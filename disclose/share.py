"""Sharing evidence with someone who has no account: a revocable link, an optional access code,
an expiry and a download limit, and every step in the custody log (issue 18, docs/sharing.md).

Rules checked here, for the CLI and the web app alike (each refusal is a custody event):

* a recipient has a kind: public, court, prosecutor, reconsideration (行政复议) or complainant;
* originals go only to court / prosecutor / reconsideration recipients, and only from an account
  holding the `share_originals` right (`custody share grant`, given by an administrator);
* redacted copies go only once a second reviewer approved them (every recipient kind; a
  recipient marked public can never receive anything else);
* the sharer must be allowed to see every recording shared (units, inspectors' own recordings).

The link's token is random (256 bits) and only its SHA-256 is stored: the link is shown once,
at creation.  The access code (8 digits) is stored as an argon2 hash; wrong codes are counted
per share and lock the code for `CODE_LOCK_MINUTES` after `CODE_ATTEMPTS` failures.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.access import can_see_case, can_see_media, media_visible_clause
from catalog.accounts import Actor, check_password, get_account, hash_password
from catalog.models import (
    Account,
    Case,
    CustodyEvent,
    Media,
    MediaLink,
    Redaction,
    Share,
    ShareGrant,
    ShareItem,
    utcnow,
)
from core.errors import CustodyError, NotFound, PermissionDenied

KINDS = ("public", "court", "prosecutor", "reconsideration", "complainant")
ORIGINALS_KINDS = ("court", "prosecutor", "reconsideration")
CONTENTS = ("originals", "redacted")
ORIGINALS_RIGHT = "share_originals"
SHARE_CAPABILITY = "share"
CODE_ATTEMPTS = 5
CODE_LOCK_MINUTES = 15.0
MAX_EXPIRY = timedelta(days=365)
_EXPIRY = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# --------------------------------------------------------------------------- small pieces
def parse_expiry(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w` -> a duration (at most a year)."""
    m = _EXPIRY.match(text or "")
    if not m:
        raise CustodyError(f"--expires: {text!r} is not a duration such as 30m, 12h, 7d or 2w / 有效期格式错误")
    span = timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])
    if span <= timedelta(0) or span > MAX_EXPIRY:
        raise CustodyError("--expires: between one minute and 365 days / 有效期须在 1 分钟至 365 天之间")
    return span


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_code() -> str:
    return f"{secrets.randbelow(10**8):08d}"


def subject_of(share: Share | int) -> str:
    return f"share:{share if isinstance(share, int) else share.id}"


def _refuse(s: Session, actor: Actor, reason: str, *, remote_addr: str | None, detail: dict[str, Any],
            exc: type[CustodyError] = PermissionDenied) -> CustodyError:
    """Log a refused share creation (committed now: the caller's transaction fails) and return the error."""
    custody_log.record(s, "share_created", actor=actor.username, outcome="refused", subject="share:new",
                       remote_addr=remote_addr, detail={"reason": reason, **detail})
    s.commit()
    return exc(reason)


# --------------------------------------------------------------------------- rights
def has_originals_right(s: Session, actor: Actor) -> bool:
    if actor.account_id is None:
        return False
    return s.execute(select(ShareGrant.id).where(ShareGrant.account_id == actor.account_id,
                                                 ShareGrant.right == ORIGINALS_RIGHT,
                                                 ShareGrant.revoked_at.is_(None))).first() is not None


def grant(s: Session, actor: Actor, username: str, reason: str, *, remote_addr: str | None = None) -> ShareGrant:
    """An administrator gives an account the right to share originals (never to itself)."""
    acc = get_account(s, username)
    if acc.username == actor.username:
        custody_log.record(s, "share_granted", actor=actor.username, outcome="refused", remote_addr=remote_addr,
                           subject=f"account:{acc.username}", detail={"reason": "an account may not grant itself"})
        s.commit()
        raise PermissionDenied("an account may not grant itself the right to share originals / 不得给自己授权")
    if acc.disabled or acc.role not in ("reviewer", "administrator"):
        raise CustodyError(f"{acc.username} ({acc.role}) cannot share; grant reviewers or administrators only")
    if len((reason or "").strip()) < 3:
        raise CustodyError("give a reason for the grant (--reason) / 请填写授权理由")
    existing = s.execute(select(ShareGrant).where(ShareGrant.account_id == acc.id, ShareGrant.right == ORIGINALS_RIGHT,
                                                  ShareGrant.revoked_at.is_(None))).scalar_one_or_none()
    if existing is not None:
        return existing
    g = ShareGrant(account_id=acc.id, right=ORIGINALS_RIGHT, reason=reason.strip(), granted_by=actor.username)
    s.add(g)
    s.flush()
    custody_log.record(s, "share_granted", actor=actor.username, subject=f"account:{acc.username}",
                       remote_addr=remote_addr, detail={"right": ORIGINALS_RIGHT, "reason": g.reason})
    return g


def ungrant(s: Session, actor: Actor, username: str, *, remote_addr: str | None = None) -> int:
    acc = get_account(s, username)
    rows = s.execute(select(ShareGrant).where(ShareGrant.account_id == acc.id, ShareGrant.revoked_at.is_(None))).scalars()
    n = 0
    for g in rows:
        g.revoked_at, g.revoked_by = utcnow(), actor.username
        n += 1
    custody_log.record(s, "share_grant_revoked", actor=actor.username, subject=f"account:{acc.username}",
                       remote_addr=remote_addr, detail={"right": ORIGINALS_RIGHT, "grants": n})
    return n


def grants(s: Session) -> list[tuple[ShareGrant, str]]:
    return list(s.execute(select(ShareGrant, Account.username).join(Account, Account.id == ShareGrant.account_id)
                          .order_by(ShareGrant.granted_at)).all())


# --------------------------------------------------------------------------- what is shared
@dataclass
class Target:
    media: Media
    original: Media | None = None  # the original of a redacted copy
    redaction: Redaction | None = None


@dataclass
class Resolved:
    targets: list[Target]
    case: Case | None
    skipped: list[dict[str, Any]] = field(default_factory=list)  # unapproved copies left out of a case


def _find_case(s: Session, ref: str) -> Case | None:
    case = s.execute(select(Case).where(Case.case_no == ref)).scalar_one_or_none()
    if case is None:
        case = s.execute(select(Case).where(Case.record_id == ref)).scalar_one_or_none()
    return case


def _media(s: Session, ref: str) -> Media:
    media = s.get(Media, int(ref)) if ref.isdigit() and len(ref) < 16 else None
    if media is None:
        raise NotFound(f"no recording {ref!r} / 没有该录像")
    return media


def _redaction(s: Session, media_id: int) -> Redaction | None:
    return s.execute(select(Redaction).where(Redaction.derived_media_id == media_id)).scalar_one_or_none()


def _copies_of(s: Session, original_ids: list[int]) -> list[tuple[Media, Redaction]]:
    if not original_ids:
        return []
    return list(s.execute(select(Media, Redaction).join(Redaction, Redaction.derived_media_id == Media.id)
                          .where(Redaction.original_media_id.in_(original_ids), Media.status != "purged")
                          .order_by(Media.id)).all())


def resolve(s: Session, actor: Actor, refs: list[str], content: str) -> Resolved:
    """`case:NO`, `media:ID`, a bare number (a recording) or a case number / record id.

    originals: the recordings named, or every recording actively linked to a case (never a
    derived copy).  redacted: a derived copy named, or the copies made from the originals named
    or linked to a case (copies not yet approved are left out and reported in `skipped`;
    a copy named directly and not approved is refused by `create_share`)."""
    if not refs:
        raise CustodyError("name at least one case or recording / 请指定案件或录像")
    case: Case | None = None
    originals: list[Media] = []
    named_copies: list[Media] = []
    for raw in refs:
        ref = raw.strip()
        if not ref:
            continue
        kind, _, rest = ref.partition(":")
        if kind == "media" and rest:
            m = _media(s, rest.strip())
        elif kind == "case" and rest:
            m = None
            ref = rest.strip()
        elif ref.isdigit() and len(ref) < 16:
            m = _media(s, ref)
        else:
            m = None
        if m is not None:
            (named_copies if m.derived_from is not None else originals).append(m)
            continue
        c = _find_case(s, ref)
        if c is None:
            raise NotFound(f"no case or recording {ref!r} / 没有该案件或录像")
        if case is not None and case.id != c.id:
            raise CustodyError("one share holds one case / 一个分享只能包含一个案件")
        case = c
        linked = s.execute(select(Media).join(MediaLink, MediaLink.media_id == Media.id)
                           .where(MediaLink.case_id == c.id, MediaLink.active.is_(True),
                                  Media.derived_from.is_(None), media_visible_clause(actor))
                           .order_by(Media.recorded_start, Media.id)).scalars().all()
        originals.extend(linked)
    seen: set[int] = set()
    targets: list[Target] = []
    skipped: list[dict[str, Any]] = []

    def add(t: Target) -> None:
        if t.media.id not in seen:
            seen.add(t.media.id)
            targets.append(t)

    if content == "originals":
        if named_copies:
            raise CustodyError(f"recording {named_copies[0].id} is a derived copy, not an original; "
                               "use --redacted / 该录像为处理副本，请使用 --redacted")
        for m in originals:
            add(Target(m))
    else:
        for m in named_copies:
            add(Target(m, s.get(Media, m.derived_from), _redaction(s, m.id)))
        for copy, r in _copies_of(s, [m.id for m in originals]):
            if r.approved_at is None:
                skipped.append({"media_id": copy.id, "reason": "not approved / 未审批"})
                continue
            add(Target(copy, s.get(Media, r.original_media_id), r))
    return Resolved(targets=targets, case=case, skipped=skipped)


# --------------------------------------------------------------------------- creating
@dataclass
class Created:
    share: Share
    token: str
    code: str | None
    targets: list[Target]
    skipped: list[dict[str, Any]]

    @property
    def path(self) -> str:
        return f"/s/{self.token}"


def create_share(s: Session, actor: Actor, refs: list[str], *, recipient: str, kind: str, content: str,
                 expires: timedelta, code: bool = False, max_downloads: int | None = None,
                 note: str | None = None, remote_addr: str | None = None, via: str = "cli",
                 now: datetime | None = None) -> Created:
    """Check every rule, write the share and its items, log it; return the one-time link and code."""
    now = now or utcnow()
    recipient = " ".join((recipient or "").split())
    ask = {"refs": refs, "recipient": recipient, "kind": kind, "content": content, "via": via}
    if not actor.can(SHARE_CAPABILITY):
        raise _refuse(s, actor, f"{actor.username} ({actor.role}) may not share / 无分享权限",
                      remote_addr=remote_addr, detail=ask)
    if kind not in KINDS:
        raise CustodyError(f"recipient kind must be one of {', '.join(KINDS)} / 接收方类型无效")
    if content not in CONTENTS:
        raise CustodyError("content must be originals or redacted")
    if not recipient:
        raise CustodyError("name the recipient (--to) / 请填写接收方")
    if max_downloads is not None and max_downloads < 1:
        raise CustodyError("--downloads must be at least 1 / 下载次数至少为 1")
    if content == "originals":
        if kind not in ORIGINALS_KINDS:
            raise _refuse(s, actor, f"originals go only to a court, prosecutor or reconsideration body, not to a "
                          f"{kind} recipient / 原始文件仅可提供给法院、检察院或行政复议机关", remote_addr=remote_addr,
                          detail=ask)
        if not has_originals_right(s, actor):
            raise _refuse(s, actor, f"{actor.username} has no right to share originals (an administrator grants it "
                          "with `custody share grant`) / 无分享原始文件的授权", remote_addr=remote_addr, detail=ask)
    resolved = resolve(s, actor, refs, content)
    if resolved.case is not None and not can_see_case(s, actor, resolved.case):
        raise _refuse(s, actor, f"case {resolved.case.case_no} is outside what {actor.username} covers / 超出账号范围",
                      remote_addr=remote_addr, detail=ask)
    for t in resolved.targets:
        m = t.media
        if m.status == "purged":
            raise CustodyError(f"recording {m.id} was purged; only its record remains / 录像已删除")
        if not can_see_media(s, actor, m) or (t.original is not None and not can_see_media(s, actor, t.original)):
            raise _refuse(s, actor, f"recording {m.id} is outside what {actor.username} covers / 超出账号范围",
                          remote_addr=remote_addr, detail={**ask, "media_id": m.id})
        if content == "redacted" and (t.redaction is None or t.redaction.approved_at is None):
            raise _refuse(s, actor, f"redacted copy {m.id} has not been approved by a second reviewer; it cannot be "
                          "shared / 处理副本尚未经第二名审核人员批准，不得分享", remote_addr=remote_addr,
                          detail={**ask, "media_id": m.id, "reason_code": "unapproved"})
    if not resolved.targets:
        why = "nothing to share" + ("; copies not yet approved: " + ", ".join(str(x["media_id"]) for x in resolved.skipped)
                                    if resolved.skipped else "")
        if content == "redacted" and resolved.skipped:
            raise _refuse(s, actor, why + " / 没有已批准的处理副本", remote_addr=remote_addr, detail=ask)
        raise CustodyError(why + " / 没有可分享的录像")
    token = new_token()
    the_code = new_code() if code else None
    share = Share(token_hash=token_hash(token), recipient=recipient[:200], recipient_kind=kind, content=content,
                  case_id=resolved.case.id if resolved.case else None, created_by=actor.username, created_at=now,
                  expires_at=now + expires, code_hash=hash_password(the_code) if the_code else None,
                  max_downloads=max_downloads, downloads=0, failed_code_attempts=0,
                  note=(note or "").strip() or None)
    s.add(share)
    s.flush()
    for n, t in enumerate(resolved.targets, start=1):
        s.add(ShareItem(share_id=share.id, position=n, media_id=t.media.id,
                        original_media_id=t.original.id if t.original else None, sha256=t.media.sha256,
                        size=t.media.size))
    s.flush()
    detail = {"recipient": share.recipient, "kind": kind, "content": content, "expires_at": share.expires_at.isoformat(),
              "code": bool(the_code), "max_downloads": max_downloads, "via": via,
              "case_no": resolved.case.case_no if resolved.case else None,
              "items": [t.media.id for t in resolved.targets], "skipped": resolved.skipped}
    for t in resolved.targets:
        custody_log.record(s, "share_created", actor=actor.username, media_id=t.media.id, subject=subject_of(share),
                           remote_addr=remote_addr, at=now,
                           detail={"share": share.id, "sha256": t.media.sha256, "recipient": share.recipient,
                                   "kind": kind, "original_media_id": t.original.id if t.original else None})
    custody_log.record(s, "share_created", actor=actor.username, subject=subject_of(share), remote_addr=remote_addr,
                       detail=detail, at=now)
    return Created(share=share, token=token, code=the_code, targets=resolved.targets, skipped=resolved.skipped)


# --------------------------------------------------------------------------- managing
def may_manage(actor: Actor, share: Share) -> bool:
    return actor.username == share.created_by or actor.can("admin")


def may_read(actor: Actor, share: Share) -> bool:
    return may_manage(actor, share) or actor.can("audit")


def get_share(s: Session, actor: Actor, share_id: int, *, manage: bool = False) -> Share:
    share = s.get(Share, share_id)
    if share is None:
        raise NotFound(f"no share {share_id} / 没有该分享")
    if not (may_manage(actor, share) if manage else may_read(actor, share)):
        custody_log.record(s, "refused", actor=actor.username, outcome="refused", subject=subject_of(share),
                           detail={"reason": "not the sharer, an administrator or an auditor",
                                   "manage": manage})
        s.commit()
        raise PermissionDenied(f"{actor.username} did not create share {share_id} / 无权查看或管理该分享")
    return share


def list_shares(s: Session, actor: Actor) -> list[Share]:
    q = select(Share).order_by(Share.id.desc())
    if not (actor.can("admin") or actor.can("audit")):
        q = q.where(Share.created_by == actor.username)
    return list(s.execute(q).scalars())


def revoke(s: Session, actor: Actor, share_id: int, reason: str = "", *, remote_addr: str | None = None,
           via: str = "cli") -> Share:
    share = get_share(s, actor, share_id, manage=True)
    if share.revoked_at is not None:
        return share
    share.revoked_at, share.revoked_by = utcnow(), actor.username
    share.revoke_reason = (reason or "").strip() or None
    custody_log.record(s, "share_revoked", actor=actor.username, subject=subject_of(share), remote_addr=remote_addr,
                       detail={"reason": share.revoke_reason, "via": via})
    return share


def state_of(share: Share, now: datetime | None = None) -> str:
    """open | revoked | expired | used_up (the download limit is reached)."""
    now = now or utcnow()
    if share.revoked_at is not None:
        return "revoked"
    if share.expires_at <= now:
        return "expired"
    if share.max_downloads is not None and share.downloads >= share.max_downloads:
        return "used_up"
    return "open"


def items_of(s: Session, share: Share) -> list[tuple[ShareItem, Media, Media | None, Redaction | None]]:
    rows = s.execute(select(ShareItem).where(ShareItem.share_id == share.id).order_by(ShareItem.position)).scalars()
    out = []
    for it in rows:
        m = s.get(Media, it.media_id)
        orig = s.get(Media, it.original_media_id) if it.original_media_id else None
        out.append((it, m, orig, _redaction(s, it.media_id) if it.original_media_id else None))
    return out


def events_of(s: Session, share: Share) -> list[CustodyEvent]:
    """Every event of the share itself (creation, views, downloads, refusals, revocation)."""
    return list(s.execute(select(CustodyEvent).where(CustodyEvent.subject == subject_of(share),
                                                     CustodyEvent.media_id.is_(None))
                          .order_by(CustodyEvent.seq)).scalars())


def summary(s: Session, share: Share, now: datetime | None = None) -> dict[str, Any]:
    """What a receipt, `share show --json` and the pages show (instants as aware datetimes)."""
    case = s.get(Case, share.case_id) if share.case_id else None
    items = []
    for it, m, orig, red in items_of(s, share):
        items.append({
            "position": it.position, "media_id": it.media_id, "sha256": it.sha256, "size": it.size,
            "kind": m.kind, "name": m.original_name, "duration_seconds": m.duration_seconds,
            "recorded_start": m.recorded_start, "status": m.status,
            "original": ({"media_id": orig.id, "sha256": orig.sha256, "size": orig.size} if orig else None),
            "approved_by": red.approved_by if red else None, "approved_at": red.approved_at if red else None,
        })
    events = events_of(s, share)
    return {
        "id": share.id, "recipient": share.recipient, "kind": share.recipient_kind, "content": share.content,
        "case_no": case.case_no if case else None, "enterprise": case.enterprise if case else None,
        "created_by": share.created_by, "created_at": share.created_at, "expires_at": share.expires_at,
        "code": share.code_hash is not None, "max_downloads": share.max_downloads, "downloads": share.downloads,
        "revoked_at": share.revoked_at, "revoked_by": share.revoked_by, "revoke_reason": share.revoke_reason,
        "state": state_of(share, now), "note": share.note, "items": items,
        "total_bytes": sum(i["size"] for i in items),
        "events": [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "outcome": e.outcome,
                    "remote_addr": e.remote_addr, "detail": e.detail or {}} for e in events],
        "downloaded": [{"at": e.at, "remote_addr": e.remote_addr, "user_agent": (e.detail or {}).get("user_agent")}
                       for e in events if e.action == "share_downloaded" and e.outcome == "ok"],
    }


# --------------------------------------------------------------------------- the recipient's side
RECIPIENT = "recipient"


def find_by_token(s: Session, token: str) -> Share | None:
    if not token or len(token) > 128:
        return None
    return s.execute(select(Share).where(Share.token_hash == token_hash(token))).scalar_one_or_none()


def recipient_event(s: Session, share: Share | None, action: str, *, outcome: str = "ok", remote_addr: str | None,
                    user_agent: str | None, detail: dict[str, Any] | None = None,
                    media_id: int | None = None) -> CustodyEvent:
    """A recipient's view, download or refusal: actor `recipient`, the address and user agent."""
    return custody_log.record(s, action, actor=RECIPIENT, outcome=outcome, media_id=media_id,
                              subject=subject_of(share) if share else "share:unknown", remote_addr=remote_addr,
                              detail={"user_agent": (user_agent or "")[:300],
                                      **({"recipient": share.recipient} if share else {}), **(detail or {})})


def check_code(s: Session, share: Share, code: str, *, remote_addr: str | None, user_agent: str | None,
               now: datetime | None = None) -> str:
    """ok | wrong | locked.  Each failure is logged; CODE_ATTEMPTS failures lock the code for a while."""
    now = now or utcnow()
    if share.code_locked_until is not None and share.code_locked_until > now:
        recipient_event(s, share, "share_refused", outcome="refused", remote_addr=remote_addr, user_agent=user_agent,
                        detail={"reason": "code_locked", "until": share.code_locked_until.isoformat()})
        return "locked"
    if share.code_hash and check_password(share.code_hash, (code or "").strip()):
        share.failed_code_attempts = 0
        share.code_locked_until = None
        recipient_event(s, share, "share_unlocked", remote_addr=remote_addr, user_agent=user_agent)
        return "ok"
    share.failed_code_attempts = (share.failed_code_attempts or 0) + 1
    detail: dict[str, Any] = {"reason": "wrong_code", "attempt": share.failed_code_attempts}
    result = "wrong"
    if share.failed_code_attempts >= CODE_ATTEMPTS:
        share.code_locked_until = now + timedelta(minutes=CODE_LOCK_MINUTES)
        share.failed_code_attempts = 0
        detail["locked_until"] = share.code_locked_until.isoformat()
        result = "locked"
    recipient_event(s, share, "share_refused", outcome="refused", remote_addr=remote_addr, user_agent=user_agent,
                    detail=detail)
    return result


def unlock_proof(token: str, share: Share) -> str:
    """What the recipient's cookie holds after a right code: bound to the link and the code's hash."""
    return hashlib.sha256(f"custody-share/1:{token}:{share.code_hash or ''}".encode()).hexdigest()


def claim_download(s: Session, share: Share, *, remote_addr: str | None, user_agent: str | None,
                   package: dict[str, Any], now: datetime | None = None) -> str:
    """Count one download (atomically against the limit) and log it for the share and each item.

    Returns the share's state: 'open' when the download may go ahead, else why not (also logged)."""
    now = now or utcnow()
    why = state_of(share, now)
    if why == "open":
        q = update(Share).where(Share.id == share.id, Share.revoked_at.is_(None), Share.expires_at > now)
        if share.max_downloads is not None:
            q = q.where(or_(Share.max_downloads.is_(None), Share.downloads < Share.max_downloads))
        done = s.execute(q.values(downloads=Share.downloads + 1)).rowcount
        if done != 1:
            s.refresh(share)
            why = state_of(share, now)
            why = "used_up" if why == "open" else why
    if why != "open":
        recipient_event(s, share, "share_refused", outcome="refused", remote_addr=remote_addr, user_agent=user_agent,
                        detail={"reason": why, "wanted": "download"})
        return why
    s.refresh(share)
    for it in s.execute(select(ShareItem).where(ShareItem.share_id == share.id).order_by(ShareItem.position)).scalars():
        recipient_event(s, share, "share_downloaded", media_id=it.media_id, remote_addr=remote_addr,
                        user_agent=user_agent, detail={"sha256": it.sha256, "size": it.size})
    recipient_event(s, share, "share_downloaded", remote_addr=remote_addr, user_agent=user_agent,
                    detail={"download": share.downloads, "of": share.max_downloads, **package})
    return "open"
