"""Index one recording, and the worker loop the daemon runs in threads.

Indexing reads the bytes (no catalog transaction open: probing and decoding take
seconds), stores the derivative images, then writes everything it learned in one
transaction together with the job's completion and an `indexed` custody event.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import system_actor
from core.errors import ConfigError, NotFound
from catalog import jobs
from cases import linking
from indexer import keyframes, timing
from catalog import custody_log
from catalog.models import Derivative, Device, DockSession, Media, Sighting, utcnow
from indexer.derivatives import StoredDerivative, store_keyframes, store_photo_thumbnail
from indexer.probe import ProbeResult, probe_media
from ingest.profiles import station_profiles
from indexer.source import open_source

log = logging.getLogger("custody.indexer")

UNPLAYABLE = "unplayable"


@dataclass
class Outcome:
    media_id: int
    state: str  # indexed|skipped|retimed
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Ref:
    id: int
    sha256: str
    size: int
    kind: str
    storage_key: str
    duration: float | None


# --------------------------------------------------------------------------- profile & zone
def profile_for(app: Any, session: Session, media: Media) -> Any:
    """The device profile the recording came through (dock session first, then device)."""
    name = None
    if media.first_session_id:
        ds = session.get(DockSession, media.first_session_id)
        name = ds.profile if ds else None
    if name is None and media.device_id:
        dev = session.get(Device, media.device_id)
        name = dev.profile if dev else None
    if name is None:
        return None
    try:
        return next((p for p in station_profiles(app.settings) if p.name == name), None)
    except ConfigError:
        return None  # no profile folder here: fall back to readings kept at the dock


# --------------------------------------------------------------------------- indexing
def index_media(app: Any, media_id: int, *, force: bool = False, actor: str | None = None,
                on_commit: Callable[[Session], None] | None = None,
                heartbeat: Callable[[], None] | None = None) -> Outcome:
    """Probe, time, keyframe one recording and record it.  Unplayable files are flagged, not raised.

    `on_commit(session)` runs first inside the result transaction (the job queue's lease
    check); `heartbeat()` is called between the slow stages.
    """
    actor = actor or system_actor(app.station).username
    with app.catalog.session() as s:
        m = s.get(Media, media_id)
        if m is None:
            raise NotFound(f"no recording with id {media_id}")
        skip = (f"recording is {m.status}" if m.status != "stored"
                else "already indexed" if m.index_state == "done" and not force else None)
        ref = _Ref(m.id, m.sha256, m.size, m.kind, m.storage_key, m.duration_seconds)
    if skip:  # outside the read transaction: SQLite allows one writer at a time
        return _skip(app, media_id, on_commit, skip)

    found = _examine(app, ref, heartbeat)
    with app.catalog.session() as s:
        if on_commit:
            on_commit(s)
        m = s.get(Media, media_id)
        assert m is not None
        detail = _record(app, s, m, found, force, actor)
    return Outcome(media_id, "indexed", detail)


@dataclass
class _Findings:
    probe: ProbeResult
    stored: list[StoredDerivative] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    decode_problem: str | None = None


def _examine(app: Any, ref: _Ref, heartbeat: Callable[[], None] | None) -> _Findings:
    """Read the bytes (no transaction open: this takes seconds), store the derivative images."""
    cfg = app.settings.indexer
    beat = heartbeat or (lambda: None)
    with open_source(app.settings, app.store, ref.sha256, ref.size, ref.storage_key,
                     allow_url=ref.kind != "photo") as src:
        found = _Findings(probe_media(src.location, ref.kind))
        beat()
        playable = found.probe.unplayable is None
        if playable and ref.kind == "video":
            try:
                sel = keyframes.select(src.location, found.probe.duration or ref.duration,
                                       cfg.keyframe_interval_seconds, cfg.keyframe_max_per_clip,
                                       found.probe.summary.get("rotation"), cfg.keyframe_width)
                found.stats = {k: (round(v, 3) if isinstance(v, float) else int(v)) for k, v in sel.stats.items()}
                found.stored = store_keyframes(app.store, ref.sha256, sel.frames, cfg.keyframe_width,
                                               cfg.thumbnail_width)
            except keyframes.KeyframeError as e:
                found.stats, found.decode_problem = {"error": str(e)}, f"decoder: {e}"
        elif playable and ref.kind == "photo":
            found.stored = store_photo_thumbnail(app.store, ref.sha256, src.location, cfg.thumbnail_width)
        found.stats["read_from"] = src.via
        beat()
    return found


def _record(app: Any, s: Session, m: Media, found: _Findings, force: bool, actor: str) -> dict[str, Any]:
    """Write what indexing learned, fix the time, log it, then link: one transaction."""
    _write_probe(m, found.probe)
    problem = found.probe.unplayable or found.decode_problem
    if problem:
        _flag_unplayable(m, problem)
    readings = _time(app, s, m, found.probe)
    _write_derivatives(s, m, found.stored)
    m.meta = {**(m.meta or {}), "keyframes": found.stats}
    m.index_state = "done"
    detail = {"time_source": m.time_source, "recorded_start": _iso(m.recorded_start),
              "clock_offset_seconds": m.clock_offset_seconds, "clock_offset_source": m.clock_offset_source,
              "keyframes": sum(1 for d in found.stored if d.kind == "keyframe"), "reindex": force,
              "readings": sorted(readings)}
    if problem:
        detail["unplayable"] = problem
    custody_log.record(s, "indexed", actor=actor, media_id=m.id, subject=m.sha256, detail=detail)
    if m.kind == "photo" and m.first_session_id:
        _photo_clock_estimate(app, s, m)
    outcome = link(app, s, m, actor)
    # The station log's story of a recording: indexed (time, keyframes, playable?), then linked.
    start = m.recorded_start.astimezone(app.settings.tz).strftime("%Y-%m-%d %H:%M:%S") if m.recorded_start else "?"
    serial = m.device.serial if m.device else "?"
    log.info("media %s [%s] %s: indexed — %s %s (time from %s), %d keyframe(s)%s; %s", m.id, serial,
             _plain(m.original_name), m.kind, start, m.time_source or "?", detail["keyframes"],
             f", unplayable: {_plain(problem)}" if problem else "", _link_story(outcome))
    return detail


def _plain(text: str | None) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in (text or ""))


def _link_story(outcome: linking.LinkOutcome | None) -> str:
    if outcome is None:
        return "linking failed (see above)"
    if outcome.review:
        return f"queued for review: {outcome.review.split(' / ', 1)[-1]}"
    if outcome.linked:
        return f"linked to {', '.join(outcome.linked)}"
    return "linked to no case"


def link(app: Any, s: Session, m: Media, actor: str) -> linking.LinkOutcome | None:
    """Case linking, in a savepoint: a linking fault is logged and leaves the index intact."""
    outcome = None
    try:
        with s.begin_nested():
            outcome = linking.link_recording(s, app.settings, m, actor=actor)
    except Exception as e:  # noqa: BLE001 - linking is another package's code; the index must land
        log.exception("linking recording %s failed", m.id)
        custody_log.record(s, "linked", actor=actor, outcome="failed", media_id=m.id, subject=m.sha256,
                           detail={"reason": f"{type(e).__name__}: {e}"[:1000]})
    _retain(app, s, m, actor)
    return outcome


def _retain(app: Any, s: Session, m: Media, actor: str) -> None:
    """Links decide how long a recording is kept: queue its retention decision (a `retain` job,
    run by retention's worker in the same catalog transaction's wake; the indexer never imports
    retention)."""
    jobs.enqueue(s, m.id, "retain")


def _skip(app: Any, media_id: int, on_commit: Callable[[Session], None] | None, why: str) -> Outcome:
    if on_commit:
        with app.catalog.session() as s:
            on_commit(s)
    return Outcome(media_id, "skipped", {"reason": why})


def _iso(dt: Any) -> str | None:
    return dt.astimezone(timezone.utc).isoformat() if dt else None


def _write_probe(m: Media, probe: ProbeResult) -> None:
    m.probe = {"tool": probe.tool, **probe.raw}
    s = probe.summary
    m.width, m.height = s.get("width"), s.get("height")
    m.meta = {**(m.meta or {}), "technical": s}  # the duration is set by _time, once bounded


def _flag_unplayable(m: Media, reason: str) -> None:
    """Add the flag with the tool's reason.  Flags are only ever added here: the ingest check
    decodes the file's tail and may know what a header probe cannot, so a clean probe
    clears nothing."""
    flags = list(m.flags or [])
    reasons = dict(m.flag_reasons or {})
    if UNPLAYABLE not in flags:
        flags.append(UNPLAYABLE)
    known = reasons.get(UNPLAYABLE)
    reasons[UNPLAYABLE] = reason if not known or reason in known else f"{known}; {reason}"
    m.flags, m.flag_reasons = flags, reasons  # new objects: JSON columns notice reassignment only


def _time(app: Any, s: Session, m: Media, probe: ProbeResult) -> dict[str, timing.Reading]:
    profile = profile_for(app, s, m)
    zone = timing.device_zone(profile, app.settings)
    # The container's duration is bounded first (size, name time vs mtime, dock): a hostile
    # one must neither stretch the interval nor move the start the mtime reading derives.
    first = timing.collect_readings(m, probe.summary, profile, zone, None)
    name, start = first.get("filename"), timing.choose({k: v for k, v in first.items() if k != "mtime"})
    offset = timing.resolve_offset(s, m, start.device_time).seconds if start else None
    timing.bound_duration(m, probe.duration, name.device_time if name else None,
                          start.device_time if start else None, offset)
    readings = timing.collect_readings(m, probe.summary, profile, zone, m.duration_seconds)
    m.meta = {**(m.meta or {}), "time_readings": timing.readings_json(readings)}
    timing.apply_time(s, m, readings)
    return readings


def _write_derivatives(s: Session, m: Media, stored: list[StoredDerivative]) -> None:
    """New derivatives supersede earlier ones; earlier rows are marked, never deleted."""
    now = utcnow()
    for old in s.execute(select(Derivative).where(Derivative.media_id == m.id,
                                                  Derivative.purged_at.is_(None))).scalars():
        old.purged_at = now
    for d in stored:
        s.add(Derivative(media_id=m.id, kind=d.kind, offset_seconds=d.offset_seconds, storage_key=d.storage_key,
                         width=d.width, height=d.height, score=d.score, reason=d.reason))


def _photo_clock_estimate(app: Any, s: Session, photo: Media) -> None:
    """A photo with GPS time may give (or refine) its dock session's clock offset."""
    ds = timing.session_for_update(s, photo.first_session_id)
    if ds is None:
        return
    profile = profile_for(app, s, photo)
    est = timing.estimate_from_photos(s, ds, timing.device_zone(profile, app.settings))
    if est is None:
        return
    custody_log.record(s, "clock_estimated", actor=system_actor(app.station).username, session_id=ds.id,
                       subject=f"dock_session:{ds.id}",
                       detail={"offset_seconds": est.seconds, "source": est.source, "photo_media_id": photo.id})
    siblings = s.execute(
        select(Media.id).where(Media.status == "stored", Media.index_state == "done",
                               (Media.first_session_id == ds.id)
                               | Media.id.in_(select(Sighting.media_id).where(Sighting.session_id == ds.id)))
    ).scalars().all()
    for mid in siblings:
        if mid == photo.id:
            timing.apply_time(s, photo, timing.stored_readings(photo))
        else:
            jobs.enqueue(s, mid, "retime")


def retime_media(app: Any, media_id: int, *, actor: str | None = None, why: str = "clock offset changed",
                 on_commit: Callable[[Session], None] | None = None) -> Outcome:
    """Recompute the corrected time from the readings kept at indexing (no bytes read)."""
    actor = actor or system_actor(app.station).username
    with app.catalog.session() as s:
        if on_commit:
            on_commit(s)
        m = s.get(Media, media_id)
        if m is None:
            raise NotFound(f"no recording with id {media_id}")
        return retime_in_session(app, s, m, actor=actor, why=why)


def retime_in_session(app: Any, s: Session, m: Media, *, actor: str, why: str,
                      action: str = "retimed", extra: dict[str, Any] | None = None) -> Outcome:
    readings = timing.stored_readings(m)
    if not readings:
        return Outcome(m.id, "skipped", {"reason": "not indexed yet"})
    before = {"recorded_start": _iso(m.recorded_start), "clock_offset_seconds": m.clock_offset_seconds,
              "clock_offset_source": m.clock_offset_source}
    if not timing.apply_time(s, m, readings):
        return Outcome(m.id, "skipped", {"reason": "time unchanged"})
    after = {"recorded_start": _iso(m.recorded_start), "clock_offset_seconds": m.clock_offset_seconds,
             "clock_offset_source": m.clock_offset_source}
    detail = {"why": why, "before": before, "after": after, "device_start": m.device_start_text, **(extra or {})}
    custody_log.record(s, action, actor=actor, media_id=m.id, subject=m.sha256, detail=detail)
    link(app, s, m, actor)
    return Outcome(m.id, "retimed", detail)


# --------------------------------------------------------------------------- the queue
def run_job(app: Any, lease: jobs.Lease, actor: str | None = None) -> str:
    """Run one claimed job; every failure is recorded on the job, never raised."""
    cfg = app.settings.indexer
    guard = lambda s: jobs.finish(s, lease)  # noqa: E731 - the lease check rides in the result transaction
    try:
        if lease.media_id is None:
            raise NotFound(f"job {lease.job_id} names no recording")
        if lease.kind == "retime":
            retime_media(app, lease.media_id, actor=actor, on_commit=guard)
        else:
            index_media(app, lease.media_id, force=lease.kind == "reindex", actor=actor, on_commit=guard,
                        heartbeat=lambda: jobs.renew(app.catalog, lease, cfg.job_lease_seconds))
        return "done"
    except jobs.LeaseLost as e:
        log.warning("%s", e)
        return "lost"
    except Exception as e:  # noqa: BLE001 - a worker must survive any one recording
        reason = f"{type(e).__name__}: {e}"
        log.warning("job %s (media %s) failed: %s", lease.job_id, lease.media_id, reason)
        state = jobs.fail(app.catalog, lease, reason, cfg.max_attempts, cfg.retry_seconds)
        if state == "failed":
            _record_failure(app, lease, reason, actor)
        return state


def _record_failure(app: Any, lease: jobs.Lease, reason: str, actor: str | None) -> None:
    try:
        with app.catalog.session() as s:
            custody_log.record(s, "indexed", actor=actor or system_actor(app.station).username, outcome="failed",
                               media_id=lease.media_id, detail={"job_id": lease.job_id, "reason": reason[:1000],
                                                                "attempts": lease.attempts})
    except Exception:  # noqa: BLE001 - the job row already carries the reason
        log.exception("could not record the failure of job %s", lease.job_id)


def run_pending(app: Any, worker_id: str, *, actor: str | None = None,
                only_ids: Collection[int] | None = None) -> dict[str, int]:
    """Work the queue until nothing is claimable (the `custody index --pending` path)."""
    return jobs.drain(app.catalog, app.settings.indexer, worker_id, jobs.INDEX_KINDS,
                      lambda lease: run_job(app, lease, actor), only_ids)


def run_worker(app: Any, stop_event: threading.Event, worker_id: str) -> None:
    """The daemon's indexing thread: claim, run, repeat until `stop_event` is set."""
    log.info("indexer worker %s started", worker_id)
    jobs.work(app.catalog, app.settings.indexer, worker_id, jobs.INDEX_KINDS, lambda lease: run_job(app, lease),
              stop_event)
    log.info("indexer worker %s stopped", worker_id)
