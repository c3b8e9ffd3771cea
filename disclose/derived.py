"""Derived (redacted) recordings in the catalog and the store, and their approval.

A redaction reads the original's bytes (checked against its SHA-256 first), writes a new
file, and stores it as a new recording: its own SHA-256 and content-addressed object in the
same store, `media.derived_from` naming the original, the original's retention copied
(keep-until, rule, Object Lock retain-until and legal hold, then a `retain` job so that
later decisions follow) and a row in `redactions` holding the redaction log.  The original's
row and object are never written.

A derived copy is approved by a second reviewer, never by the account that made it
(`approve`); the sharing code reads `approved(session, media_id)`.  Making and approving are
custody events (`redacted` on the copy and `derived` on the original; `redaction_approved`),
refusals are logged with outcome `refused`.

Capabilities (catalog.accounts): making a copy needs `export` (the right to copy evidence
out: reviewers, administrators); approving needs `review`.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import custody_log, jobs, objrecord
from catalog.access import can_see_media
from catalog.accounts import Actor, require, resolve_actor
from catalog.app import App
from catalog.lookup import find_media
from catalog.models import Media, Redaction, utcnow
from core.errors import CustodyError, NotFound, PermissionDenied, StorageIntegrityError
from disclose import redact
from disclose.faces import DEFAULT_INPUT_WIDTH, DEFAULT_THRESHOLD, FaceDetector
from storage.base import media_key
from storage.fixity import sha256_file, sha256_stream

log = logging.getLogger(__name__)

CREATE_CAPABILITY = "export"
APPROVE_CAPABILITY = "review"
REDACTABLE = ("video", "audio", "photo")


@dataclass
class Made:
    derived: Media
    original: Media
    redaction: Redaction

    def as_json(self) -> dict[str, Any]:
        return {"derived": {"id": self.derived.id, "sha256": self.derived.sha256,
                            "storage_key": self.derived.storage_key, "size": self.derived.size,
                            "kind": self.derived.kind},
                "original": {"id": self.original.id, "sha256": self.original.sha256},
                "redaction": redaction_json(self.redaction)}


def redaction_json(r: Redaction) -> dict[str, Any]:
    return {"id": r.id, "derived_media_id": r.derived_media_id, "original_media_id": r.original_media_id,
            "created_by": r.created_by, "created_at": r.created_at.isoformat() if r.created_at else None,
            "reason": r.reason, "approved": r.approved_at is not None, "approved_by": r.approved_by,
            "approved_at": r.approved_at.isoformat() if r.approved_at else None, "log": r.log}


def check_reason(text: str) -> str:
    text = (text or "").strip()
    if len(text) < 3:
        raise CustodyError("give a reason for the redaction (--reason) / 请填写处理理由")
    return text[:2000]


def _allowed(s: Session, actor: Actor, media: Media, capability: str) -> None:
    require(s, actor, capability, f"media:{media.id}")
    if actor.role != "system" and not can_see_media(s, actor, media):
        custody_log.record(s, "refused", actor=actor.username, outcome="refused", media_id=media.id,
                           subject=f"media:{media.id}", detail={"capability": capability,
                                                                "reason": "recording outside the account's scope"})
        s.commit()
        raise PermissionDenied(f"recording {media.id} is outside what {actor.username} covers / 超出账号范围")


def fetch_original(app: App, media: Media, dest: Path) -> Path:
    """A verified local copy of the original's bytes (the store's own file when it is local)."""
    local = app.store.local_path(media.storage_key)
    if local is not None:
        if sha256_file(local) != media.sha256:
            raise StorageIntegrityError(f"the stored bytes of recording {media.id} do not hash to its SHA-256")
        return local
    with open(dest, "wb") as f:
        sha, _ = sha256_stream(_tee(app.store.iter_bytes(media.storage_key), f))
    if sha != media.sha256:
        raise StorageIntegrityError(f"the stored bytes of recording {media.id} do not hash to its SHA-256")
    return dest


def _tee(chunks: Any, f: Any) -> Any:
    for c in chunks:
        f.write(c)
        yield c


def make_redaction(app: App, media_ref: str, plan: redact.Plan, reason: str, *, actor: Actor | None = None,
                   threshold: float = DEFAULT_THRESHOLD, input_width: int = DEFAULT_INPUT_WIDTH,
                   remote_addr: str | None = None, job_id: int | None = None) -> Made:
    """Make, store and log a derived copy of the recording `media_ref` (id or SHA-256).
    `job_id`: the web request's `redact` job (disclose/queue.py), kept in the redaction log."""
    reason = check_reason(reason)
    with app.catalog.session() as s:
        actor = actor or resolve_actor(s, app.user)
        original = find_media(s, str(media_ref))
        _allowed(s, actor, original, CREATE_CAPABILITY)
        if original.status != "stored":
            raise NotFound(f"recording {original.id} is {original.status}; only its record remains / 录像已清除")
        if original.kind not in REDACTABLE:
            raise CustodyError(f"recording {original.id} is of kind {original.kind!r}; cannot redact / 不支持的类型")
        if not (plan.faces or plan.boxes or plan.mute or plan.still is not None
                or plan.start > 0 or plan.end is not None):
            raise CustodyError("nothing to redact: give --faces, --boxes, --mute, --still or a segment / 未指定处理")
        s.expunge(original)
    detector = FaceDetector(threshold, input_width) if plan.faces else None
    with tempfile.TemporaryDirectory(prefix="custody-redact-") as tmp:
        src = fetch_original(app, original, Path(tmp) / "original")
        still = plan.still is not None or original.kind == "photo"
        out = Path(tmp) / ("derived.jpg" if still else "derived.mp4")
        try:
            facts = redact.run(src, out, plan, kind=original.kind, detector=detector)
        except CustodyError as e:
            with app.catalog.session() as s:
                custody_log.record(s, "redacted", actor=actor.username, outcome="failed", media_id=original.id,
                                   subject=f"media:{original.id}", remote_addr=remote_addr,
                                   detail={"reason": reason, "error": str(e)[:500], "request": plan.describe()})
            raise
        sha, size = sha256_file(out), out.stat().st_size
        now = utcnow()
        entry = {"schema": 1, "by": actor.username, "at": now.isoformat(), "reason": reason,
                 "original": {"id": original.id, "sha256": original.sha256, "size": original.size},
                 "derived": {"sha256": sha, "size": size}, "request": plan.describe(), **facts,
                 **({"job": job_id} if job_id is not None else {})}
        with app.catalog.session() as s:
            dup = s.execute(select(Media.id).where(Media.sha256 == sha)).scalar_one_or_none()
        if dup is not None:
            raise CustodyError(f"the same derived copy is already stored as recording {dup} / 相同副本已存在")
        key = media_key(sha)
        obj = app.store.put_file(key, out, sha, size, metadata={"station": app.station, "derived-from": original.sha256},
                                 content_type="image/jpeg" if still else "video/mp4")
    with app.catalog.session() as s:
        orig = s.get(Media, original.id)
        kind = "photo" if still else facts.get("kind", "video")
        seg_from = float((facts.get("segment") or {}).get("from") or plan.still or 0.0)
        seg_to = (facts.get("segment") or {}).get("to")
        derived = Media(
            sha256=sha, size=size, kind=kind, storage_key=key, storage_checksum=obj.checksum, status="stored",
            device_id=orig.device_id, officer_id=orig.officer_id, officer_badge=orig.officer_badge,
            # No dock session and no device reading: session re-timing, photo clock estimates and
            # clock corrections (which select by device_start) leave a copy alone.
            unit_code=orig.unit_code, first_session_id=None,
            original_path=f"derived:media/{orig.id}",
            original_name=f"redacted-{orig.id}-{sha[:8]}.{'jpg' if still else 'mp4'}",
            device_start_text=None, device_start=None,
            recorded_start=_shift(orig.recorded_start, seg_from),
            recorded_end=_shift(orig.recorded_start, float(seg_to)) if seg_to is not None else None,
            duration_seconds=(float(seg_to) - seg_from) if seg_to is not None else None,
            time_source=orig.time_source, clock_offset_seconds=orig.clock_offset_seconds,
            clock_offset_source=orig.clock_offset_source, docked_at=None, stored_at=now, verified_at=now,
            # "done": the indexer would re-time the copy and link it to cases as a new recording.
            index_state="done", meta={"derived": {"from": orig.id, "redaction": True}},
            width=(facts.get("output") or {}).get("width"), height=(facts.get("output") or {}).get("height"),
            flags=["redacted"], flag_reasons={"redacted": f"derived from recording {orig.id}"},
            keep_until=orig.keep_until, keep_rule=orig.keep_rule, derived_from=orig.id)
        s.add(derived)
        s.flush()
        red = Redaction(derived_media_id=derived.id, original_media_id=orig.id, created_by=actor.username,
                        created_at=now, reason=reason, log=entry)
        s.add(red)
        s.flush()
        summary = {"redaction_id": red.id, "original_id": orig.id, "original_sha256": orig.sha256,
                   "derived_id": derived.id, "derived_sha256": sha, "size": size, "reason": reason,
                   "faces": plan.faces, "boxes": len(plan.boxes), "mute": [list(r) for r in plan.mute],
                   "segment": facts.get("segment"), "still": facts.get("still"), "key": key, "store": app.store.url}
        custody_log.record(s, "redacted", actor=actor.username, media_id=derived.id, subject=f"media:{orig.id}",
                           remote_addr=remote_addr, detail=summary)
        custody_log.record(s, "derived", actor=actor.username, media_id=orig.id, subject=f"media:{derived.id}",
                           remote_addr=remote_addr, detail={"derived_id": derived.id, "derived_sha256": sha,
                                                            "redaction_id": red.id, "original_unchanged": True})
        custody_log.record(s, "verified", actor=actor.username, media_id=derived.id, subject=f"sha256:{sha}",
                           detail={"store_checksum": obj.checksum})
        _copy_protection(app, s, orig, derived, actor.username)
        jobs.enqueue(s, derived.id, "retain")
        s.flush()
        s.refresh(derived)
        s.refresh(red)
        s.expunge_all()
    objrecord.write_for_media(app, derived.id)  # its record beside it names the original (issue 17)
    with app.catalog.session() as s:
        original = s.get(Media, original.id)
        s.expunge(original)
    return Made(derived, original, red)


def _shift(t: datetime | None, seconds: float) -> datetime | None:
    return t + timedelta(seconds=seconds) if t is not None else None


def _copy_protection(app: App, s: Session, orig: Media, derived: Media, actor: str) -> None:
    """The derived object gets the original's Object Lock retain-until and legal hold."""
    detail: dict[str, Any] = {"key": derived.storage_key, "mode": app.settings.storage.object_lock_mode,
                              "from_original": orig.id}
    if orig.lock_until is None and not orig.legal_hold_applied:
        return  # the retain job decides (the original was not locked yet either)
    try:
        if orig.lock_until is not None and app.settings.retention.apply_locks:
            app.store.set_retention(derived.storage_key, orig.lock_until, app.settings.storage.object_lock_mode)
            derived.lock_until = orig.lock_until
            detail["retain_until"] = orig.lock_until.isoformat()
        if orig.legal_hold_applied:
            app.store.set_legal_hold(derived.storage_key, True)
            derived.legal_hold_applied = True
            detail["legal_hold"] = True
    except CustodyError as e:
        custody_log.record(s, "retention_locked", actor=actor, media_id=derived.id, outcome="failed",
                           subject=f"media:{derived.id}", detail={**detail, "error": str(e)})
        return
    custody_log.record(s, "retention_locked", actor=actor, media_id=derived.id, subject=f"media:{derived.id}",
                       detail=detail)


# --------------------------------------------------------------------------- reading and approving
def redaction_of(s: Session, media_id: int) -> Redaction | None:
    """The redaction row of a derived recording (None for an original)."""
    return s.execute(select(Redaction).where(Redaction.derived_media_id == media_id)).scalar_one_or_none()


def approved(s: Session, media_id: int) -> bool:
    """Is this recording an approved derived copy?  (False for originals and unapproved copies.)"""
    r = redaction_of(s, media_id)
    return r is not None and r.approved_at is not None


def find_redaction(s: Session, ref: str) -> Redaction:
    """By the derived recording's id or SHA-256 (what `custody redact` printed as derived.id)."""
    media = find_media(s, ref)
    r = redaction_of(s, media.id)
    if r is None:
        raise NotFound(f"recording {media.id} is not a derived (redacted) copy / 该录像不是处理副本")
    return r


def require_view(app: App, s: Session, ref: str) -> Media:
    """The recording, when the acting account may view it (else refused and logged)."""
    actor = resolve_actor(s, app.user)
    media = find_media(s, ref)
    _allowed(s, actor, media, "view")
    return media


def approve(app: App, ref: str, *, actor: Actor | None = None, note: str = "",
            remote_addr: str | None = None) -> Redaction:
    """A second reviewer approves a derived copy for disclosure.  The author may not."""
    with app.catalog.session() as s:
        actor = actor or resolve_actor(s, app.user)
        r = find_redaction(s, ref)
        derived = s.get(Media, r.derived_media_id)
        _allowed(s, actor, derived, APPROVE_CAPABILITY)
        if actor.username == r.created_by:
            custody_log.record(s, "redaction_approved", actor=actor.username, outcome="refused",
                               media_id=r.derived_media_id, subject=f"redaction:{r.id}", remote_addr=remote_addr,
                               detail={"reason": "the author of a redaction may not approve it"})
            s.commit()
            raise PermissionDenied("a redacted copy must be approved by a second reviewer, not its author "
                                   "/ 处理副本须由另一名审核人批准")
        if r.approved_at is not None:
            raise CustodyError(f"already approved by {r.approved_by} at {r.approved_at.isoformat()} / 已批准")
        r.approved_by, r.approved_at = actor.username, utcnow()
        custody_log.record(s, "redaction_approved", actor=actor.username, media_id=r.derived_media_id,
                           subject=f"redaction:{r.id}", remote_addr=remote_addr,
                           detail={"redaction_id": r.id, "original_id": r.original_media_id,
                                   "derived_sha256": derived.sha256, "author": r.created_by,
                                   "note": (note or "").strip()[:2000]})
        s.flush()
        s.refresh(r)
        s.expunge(r)
        return r


def copy_out(app: App, ref: str, out: Path, *, actor: Actor | None = None) -> dict[str, Any]:
    """Write a stored recording's bytes (original or derived) to `out`, checked against its SHA-256,
    logged like a web download (`downloaded`, capability `export`)."""
    with app.catalog.session() as s:
        actor = actor or resolve_actor(s, app.user)
        media = find_media(s, ref)
        _allowed(s, actor, media, "export")
        if media.status != "stored":
            raise NotFound(f"recording {media.id} was purged; only its record remains / 录像已清除")
        key, size, sha, mid = media.storage_key, media.size, media.sha256, media.id
    out = Path(out)
    part = out.with_name(out.name + ".part")
    with open(part, "wb") as f:
        got, n = sha256_stream(_tee(app.store.iter_bytes(key), f))
    if got != sha or n != size:
        part.unlink(missing_ok=True)
        with app.catalog.session() as s:
            custody_log.record(s, "downloaded", actor=actor.username, outcome="failed", media_id=mid,
                               subject=f"media:{mid}", detail={"via": "cli", "reason": "hash mismatch"})
        raise StorageIntegrityError(f"the stored bytes of recording {mid} do not hash to its SHA-256")
    shutil.move(str(part), str(out))
    with app.catalog.session() as s:
        custody_log.record(s, "downloaded", actor=actor.username, media_id=mid, subject=f"media:{mid}",
                           detail={"via": "cli", "start": 0, "end": size - 1, "size": size, "sha256": sha,
                                   "out": str(out)})
    return {"id": mid, "sha256": sha, "size": size, "out": str(out)}
