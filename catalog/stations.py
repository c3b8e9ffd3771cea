"""Stations sharing one catalog: heartbeats and the status every station page shows.

A daemon writes its row in `stations` at start and every `[station].heartbeat_seconds`
(host, pid, schema revision, docked volumes, running offloads, spool free space); a clean
stop sets `stopped_at`.  A station whose last beat is older than `DOWN_AFTER_BEATS` beats
(of the viewer's `heartbeat_seconds`) and that did not stop cleanly is shown as *down*.
Everything else on the page is read live from the catalog: running offloads and copies
waiting in each station's spool (dock sessions and offload items carry their station),
jobs each station holds (`jobs.station`), the shared queue's depth, and failures (docks that
ended failed or incomplete, failed jobs, failed scheduled fixity checks).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.app import App
from catalog.models import CustodyEvent, Device, DockSession, Job, OffloadItem, Station, utcnow
from core.settings import Settings

log = logging.getLogger("custody.stations")
DOWN_AFTER_BEATS = 3
FAILURE_WINDOW = timedelta(days=7)


def _free_bytes(path: Path) -> int | None:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _docked(app: App, s: Session) -> list[dict[str, Any]]:
    """Volumes in this station's dock root now, with the serial of their latest dock session."""
    root = app.settings.path(app.settings.station.dock_root)
    try:
        names = sorted(p.name for p in root.iterdir()
                       if not p.name.startswith(".") and not p.is_symlink() and p.is_dir())
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for name in names[:200]:
        path = str(root / name)
        serial = s.execute(select(Device.serial).join(DockSession, DockSession.device_id == Device.id)
                           .where(DockSession.station == app.station, DockSession.volume_path == path)
                           .order_by(DockSession.id.desc()).limit(1)).scalar()
        out.append({"volume": name, "serial": serial})
    return out


def beat(app: App, *, starting: bool = False, stopping: bool = False) -> None:
    """Write this station's row (insert on the first beat)."""
    st = app.settings.station
    now = utcnow()
    for _ in range(2):
        try:
            with app.catalog.session() as s:
                row = s.execute(select(Station).where(Station.name == app.station)).scalar_one_or_none()
                if row is None:
                    row = Station(name=app.station, started_at=now, docked=[])
                    s.add(row)
                if starting:
                    row.started_at, row.stopped_at = now, None
                row.host, row.pid = socket.gethostname(), os.getpid()
                row.version = _schema(s)
                row.heartbeat_at = now
                row.stopped_at = now if stopping else (None if starting else row.stopped_at)
                row.dock_root = str(app.settings.path(st.dock_root))
                row.spool_dir = str(app.settings.path(st.spool_dir))
                row.spool_free_bytes = _free_bytes(app.settings.path(st.spool_dir))
                row.docked = [] if stopping else _docked(app, s)
                row.running_offloads = s.scalar(select(func.count(DockSession.id)).where(
                    DockSession.station == app.station, DockSession.state == "offloading")) or 0
            return
        except IntegrityError:
            continue  # two processes of one station inserted the first row at once: update it now


def _schema(s: Session) -> str | None:
    """The catalog's schema revision(s) this station runs against (informational)."""
    try:
        return ",".join(sorted(s.execute(text("SELECT version_num FROM alembic_version")).scalars()))[:64]
    except Exception:  # noqa: BLE001 - informational only
        return None


def run_heartbeat(app: App, stop_event: threading.Event, worker_id: str) -> None:
    """The daemon's heartbeat thread (a job-worker-shaped loop: runs until `stop_event`)."""
    every = app.settings.station.heartbeat_seconds
    started = False
    while True:
        try:
            beat(app, starting=not started)
            started = True
        except Exception as e:  # noqa: BLE001 - catalog briefly away: the page shows us down, we carry on
            log.warning("station heartbeat failed: %s", e)
        if stop_event.wait(every):
            break
    try:
        beat(app, stopping=True)
    except Exception as e:  # noqa: BLE001
        log.warning("station stop could not be recorded: %s", e)


@dataclass
class StationStatus:
    name: str
    state: str  # up|down|stopped|unknown (dock sessions but no heartbeat row: before stations were recorded)
    host: str | None = None
    pid: int | None = None
    version: str | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    heartbeat_age_seconds: float | None = None
    docked: list[dict[str, Any]] = field(default_factory=list)
    running_offloads: int = 0
    spool_free_bytes: int | None = None
    spool_waiting: int = 0  # copies in its spool awaiting upload
    jobs_running: int = 0  # jobs this station holds now
    failed_docks: int = 0  # in the last 7 days
    failed_jobs: int = 0  # failed for good, last claimed by this station
    fixity_failures: int = 0  # in the last 7 days
    recent_failures: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("started_at", "heartbeat_at"):
            d[k] = d[k].isoformat() if d[k] else None
        for f in d["recent_failures"]:
            f["at"] = f["at"].isoformat() if f.get("at") else None
        return d


def status(s: Session, settings: Settings, now: datetime | None = None) -> tuple[list[StationStatus], dict[str, int]]:
    """Every station's status, and the shared job queue's depth by state."""
    t = now or utcnow()
    down_after = DOWN_AFTER_BEATS * settings.station.heartbeat_seconds
    since = t - FAILURE_WINDOW
    rows = {r.name: r for r in s.execute(select(Station).order_by(Station.name)).scalars()}
    names = set(rows) | set(s.execute(select(DockSession.station).distinct()).scalars())
    by = lambda q: dict(s.execute(q).all())  # noqa: E731 - {station: n}
    running = by(select(DockSession.station, func.count()).where(DockSession.state == "offloading")
                 .group_by(DockSession.station))
    waiting = by(select(DockSession.station, func.count()).join(OffloadItem, OffloadItem.session_id == DockSession.id)
                 .where(OffloadItem.phase == "copied").group_by(DockSession.station))
    held = by(select(Job.station, func.count()).where(Job.state == "running").group_by(Job.station))
    failed_docks = by(select(DockSession.station, func.count())
                      .where(DockSession.state.in_(("failed", "incomplete")), DockSession.started_at >= since)
                      .group_by(DockSession.station))
    failed_jobs = by(select(Job.station, func.count()).where(Job.state == "failed").group_by(Job.station))
    fixity_failed = by(select(CustodyEvent.station, func.count())
                       .where(CustodyEvent.action == "fixity", CustodyEvent.outcome != "ok", CustodyEvent.at >= since)
                       .group_by(CustodyEvent.station))
    names |= set(held) | set(failed_jobs) | set(fixity_failed)
    out: list[StationStatus] = []
    for name in sorted(n for n in names if n):
        r = rows.get(name)
        st = StationStatus(name=name, state="unknown")
        if r is not None:
            age = (t - r.heartbeat_at).total_seconds() if r.heartbeat_at else None
            st.state = ("stopped" if r.stopped_at is not None else
                        "down" if age is None or age > down_after else "up")
            st.host, st.pid, st.version, st.started_at = r.host, r.pid, r.version, r.started_at
            st.heartbeat_at, st.heartbeat_age_seconds = r.heartbeat_at, age
            st.docked, st.spool_free_bytes = list(r.docked or []), r.spool_free_bytes
        st.running_offloads = int(running.get(name, 0))
        st.spool_waiting = int(waiting.get(name, 0))
        st.jobs_running = int(held.get(name, 0))
        st.failed_docks = int(failed_docks.get(name, 0))
        st.failed_jobs = int(failed_jobs.get(name, 0))
        st.fixity_failures = int(fixity_failed.get(name, 0))
        st.recent_failures = _recent_failures(s, name, since)
        out.append(st)
    queue = {state: int(n) for state, n in s.execute(select(Job.state, func.count()).group_by(Job.state)).all()}
    return out, queue


def _recent_failures(s: Session, name: str, since: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """The latest failed custody events written by this station (dock, upload, job, fixity)."""
    rows = s.execute(select(CustodyEvent.at, CustodyEvent.action, CustodyEvent.media_id, CustodyEvent.session_id,
                            CustodyEvent.subject, CustodyEvent.detail)
                     .where(CustodyEvent.station == name, CustodyEvent.outcome == "failed", CustodyEvent.at >= since)
                     .order_by(CustodyEvent.seq.desc()).limit(limit)).all()
    out = []
    for at, action, mid, sid, subject, detail in rows:
        d = detail or {}
        why = d.get("problem") or d.get("reason") or d.get("message") or d.get("error")
        out.append({"at": at, "action": action, "media_id": mid, "session_id": sid, "subject": subject,
                    "reason": str(why)[:300] if why else None})
    return out
