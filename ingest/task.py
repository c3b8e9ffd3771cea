"""One docked volume as a unit of work: the `DockTask` every ingest stage reads and fills in.

`ingest_volume` (ingest/pipeline.py) builds the task and runs the stages listed in
ingest/stages.py in order; each stage is a function of the task.  The task carries what the
caller gave (volume, actor, wipe, progress, stop check), what the stages hand each other
(entries, profile, identity, dock session, recordings, outage) and the result reported at
the end (`IngestResult`, the JSON of `custody ingest --json`).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog.app import App
from core.settings import StationSettings
from ingest.profiles import Identity, Profile
from ingest.spool import Spool
from ingest.states import ITEM_STATUSES, ItemStatus, SessionState
from ingest.volume import Entry

Progress = Callable[[str, dict[str, Any]], None]  # (event, data): start | file | offloaded


@dataclass
class FileResult:
    path: str
    sha256: str | None
    size: int | None
    status: ItemStatus | str
    reason: str | None = None
    media_id: int | None = None


@dataclass
class IngestResult:
    volume: str
    state: SessionState | str  # complete|incomplete|unrecognised|failed (offloaded while running)
    message: str | None = None
    session: int | None = None
    device: dict[str, Any] | None = None
    files: list[FileResult] = field(default_factory=list)
    safe_to_remove_after_s: float | None = None
    retry: bool = False  # worth trying again while docked (device busy elsewhere, spool full)
    wiped: int = 0
    changed_on_device: int = 0  # stored files whose device bytes changed after the copy (not wiped)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(f.status for f in self.files)
        return {str(s): c.get(s, 0) for s in ITEM_STATUSES}

    @property
    def ok(self) -> bool:
        return self.state == SessionState.COMPLETE and not self.counts[ItemStatus.SKIPPED]

    def to_json(self) -> dict[str, Any]:
        return {
            "volume": self.volume, "state": self.state, "message": self.message, "session": self.session,
            "device": self.device, "counts": self.counts, "wiped": self.wiped,
            "safe_to_remove_after_seconds": self.safe_to_remove_after_s,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size, "status": f.status, "reason": f.reason}
                      for f in self.files],
        }


def _never() -> bool:
    return False


def _quiet(event: str, data: dict[str, Any]) -> None:
    pass


@dataclass
class DockTask:
    """One docked volume on its way through the stages."""

    # given by the caller
    app: App
    volume: Path  # absolute, links not resolved (a link is refused, never followed)
    actor: str
    wipe: bool  # wipe each file from the device once its copy is stored and verified
    spool: Spool
    result: IngestResult
    progress: Progress = _quiet
    should_stop: Callable[[], bool] = _never  # the station is shutting down: finish the file in hand only
    # handed from stage to stage
    entries: list[Entry] = field(default_factory=list)  # recognise: everything the scan listed
    profile: Profile | None = None  # recognise: the device profile that claims the volume
    identity: Identity | None = None  # recognise: serial, officer, unit, clock as the device states them
    read_at: datetime | None = None  # recognise: when the identity (and the device clock) was read
    session: int | None = None  # open_session: the dock session's id
    media: list[Entry] = field(default_factory=list)  # open_session: the recordings to offload
    started: float = 0.0  # open_session: time.monotonic() when the session opened
    outage: str | None = None  # store: why the object store cannot be reached (nothing is wiped)
    ended: bool = False  # a stage settled the result: the stages after it do not run
    held: ExitStack = field(default_factory=ExitStack)  # what the task holds to its end (the device lock)

    @property
    def station(self) -> StationSettings:
        return self.app.settings.station

    def end(self, state: SessionState, message: str | None, *, retry: bool = False) -> None:
        """Settle the result now; the remaining stages are skipped."""
        self.result.state, self.result.message, self.ended = state, message, True
        self.result.retry = self.result.retry or retry
