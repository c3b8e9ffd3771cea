"""One docked volume, end to end.  The daemon and `custody ingest` both call `ingest_volume`.

It builds a `DockTask` (ingest/task.py) and runs the stages listed in ingest/stages.py
(`STAGES`: recognise -> open session -> refuse/skip -> offload -> store -> wipe -> finish)
over it, in order.  Stages keep explicit state in `offload_items` (pending -> copied ->
stored -> wiped), so a SIGKILL, a pulled cable or a storage outage resumes where it stopped
and never drops or duplicates a recording.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from catalog.app import App
from ingest import volume as vol
from ingest.spool import Spool
from ingest.stages import STAGES, end_interrupted
from ingest.states import SessionState
from ingest.task import DockTask, FileResult, IngestResult, Progress

__all__ = ["FileResult", "IngestResult", "ingest_volume"]
log = logging.getLogger("custody.ingest")


def ingest_volume(app: App, volume: Path, *, actor: str | None = None, wipe: bool | None = None,
                  progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> IngestResult:
    """Offload, store and (if `wipe`, default `[station].wipe_after_verify`) wipe one mounted volume."""
    volume = Path(os.path.abspath(volume))
    task = DockTask(app=app, volume=volume, actor=actor or f"station:{app.station}",
                    wipe=app.settings.station.wipe_after_verify if wipe is None else wipe,
                    spool=Spool.of(app.settings),
                    result=IngestResult(volume=vol.shown_path(volume), state=SessionState.FAILED))
    if progress is not None:
        task.progress = progress
    if should_stop is not None:
        task.should_stop = should_stop
    return run(task)


def run(task: DockTask) -> IngestResult:
    """Run every stage over the task, in order, until one settles the result.  Before a dock
    session exists a fault propagates (there is nothing to close); after, it closes the session
    as incomplete - one bad volume never takes the daemon down or leaves a session open."""
    with task.held:  # the device lock, taken by open_session, is released when the task ends
        for stage in STAGES:
            if task.ended:
                break
            if task.session is None:
                stage(task)
                continue
            try:
                stage(task)
            except Exception as e:  # noqa: BLE001 - see the docstring
                log.exception("%s: offload failed", task.volume)
                end_interrupted(task, f"offload failed: {type(e).__name__}: {e}")
    return task.result
