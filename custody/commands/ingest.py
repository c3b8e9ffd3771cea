"""Subcommands of the spine: daemon, ingest, verify, simulate-dock."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, tzinfo
from pathlib import Path

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from catalog.accounts import resolve_actor
from catalog.app import App
from catalog.audit import verify_all
from custody import station
from ingest.daemon import Daemon
from ingest.pipeline import ingest_volume
from ingest.simulate import SimDevice, build_volume, have_ffmpeg

err = Console(stderr=True)


def _safe(text: str | None) -> str:
    """File names are data: escape rich markup and control characters before showing them."""
    if text is None:
        return ""
    return escape("".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text))


def setup_logging(verbose: bool = False, tz: tzinfo | None = None) -> None:
    """Log lines carry the station's local time with its offset (the bureau reads +08:00),
    whatever time zone the host runs in."""
    def stamp(dt: datetime) -> Text:
        local = dt.astimezone() if dt.tzinfo is None else dt  # rich passes the host's naive local time
        return Text((local.astimezone(tz) if tz else local).strftime("%Y-%m-%d %H:%M:%S%z"))

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False, markup=False, log_time_format=stamp)],
                        force=True)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "watchdog", "alembic", "exifread"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.command()
@click.option("--simulate-dock", "simulate", is_flag=True, help="Also dock one simulated device of each kind.")
@click.option("--exit-when-idle", is_flag=True, help="Stop once every docked volume is offloaded and indexed.")
@click.option("-v", "--verbose", is_flag=True)
@click.pass_obj
def daemon(app: App, simulate: bool, exit_when_idle: bool, verbose: bool) -> None:
    """Watch the dock root and offload every docked device (the main job)."""
    setup_logging(verbose, app.settings.tz)
    d = station.daemon(app, exit_when_idle=exit_when_idle)

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("custody.daemon").info("signal %d: finishing the file in hand, then stopping", signum)
        d.stop.set()
        d.wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if simulate:
        d.hold_idle.set()
        threading.Thread(target=_simulate_later, args=(app, d), daemon=True).start()
    d.run()
    if exit_when_idle and any(r.state != "complete" for r in d.final_results()):
        sys.exit(1)


def _simulate_later(app: App, d: Daemon) -> None:
    try:
        time.sleep(1.0)
        if not have_ffmpeg():
            logging.getLogger("custody.daemon").error("ffmpeg not found: cannot build simulated volumes")
            return
        for i, kind in enumerate(("gat947", "dcim", "android")):
            path = _dock_simulated(app, SimDevice(kind=kind, serial=f"SIM{kind[:3].upper()}{i:02d}",
                                                  officer=f"31000{i + 1}", clock_offset_s=[0, 420, -5][i]))
            logging.getLogger("custody.daemon").info("simulated %s device docked at %s", kind, path.name)
        time.sleep(app.settings.station.poll_seconds * 2)  # let the poll see them before idling is allowed
    finally:
        d.hold_idle.clear()
        d.wake.set()


def _dock_simulated(app: App, dev: object, name: str | None = None) -> Path:
    """Build the volume beside the dock root, then rename it in: it appears whole, like a mount."""

    root = app.settings.path(app.settings.station.dock_root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".building-{uuid.uuid4().hex[:8]}"
    build_volume(tmp, dev)  # type: ignore[arg-type]
    final = root / (name or f"{dev.kind}-{dev.serial}-{uuid.uuid4().hex[:4]}")  # type: ignore[attr-defined]
    tmp.rename(final)
    return final


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON summary.")
@click.option("--wipe/--no-wipe", default=None, help="Override wipe_after_verify for this run.")
@click.pass_obj
def ingest(app: App, path: Path, as_json: bool, wipe: bool | None) -> None:
    """Run the offload pipeline once on one device volume."""
    setup_logging(tz=app.settings.tz)
    logging.getLogger("custody").setLevel(logging.WARNING)
    if as_json:
        res = ingest_volume(app, path, wipe=wipe, actor=_acting_name(app))
        click.echo(json.dumps(res.to_json(), ensure_ascii=False, indent=2))
    else:
        res = _ingest_with_progress(app, path, wipe)
        _print_summary(res)
    sys.exit(0 if res.ok else 1)


def _acting_name(app: App) -> str:
    """`--user NAME` must be an enabled account (its name goes into the custody log as who);
    without it the station itself acts, as the daemon does."""
    user = app.user
    if not user:
        return f"station:{app.station}"

    with app.catalog.session() as s:
        return resolve_actor(s, user).username


def _ingest_with_progress(app: App, path: Path, wipe: bool | None):  # noqa: ANN202
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err, transient=False) as prog:
        task = prog.add_task("offload", total=None)

        def cb(event: str, data: dict) -> None:
            if event == "start":
                prog.update(task, total=data["bytes"], description=f"offload {data['files']} files")
            elif event == "file":
                prog.advance(task, data["bytes"])
            elif event == "offloaded":
                prog.update(task, description=f"offloaded in {data['seconds']:.1f}s — device safe to remove; storing")

        return ingest_volume(app, path, wipe=wipe, actor=_acting_name(app), progress=cb)


def _print_summary(res) -> None:  # noqa: ANN001
    out = Console()
    dev = res.device or {}
    out.print(f"[bold]{_safe(res.volume)}[/bold] — {res.state}"
              + (f" ({_safe(res.message)})" if res.message else ""))
    if dev:
        out.print(f"device {_safe(dev.get('serial'))} ({dev.get('kind')}, profile {dev.get('profile')}), "
                  f"officer {_safe(dev.get('officer'))}, unit {_safe(dev.get('unit'))}, session {res.session}")
    t = Table("status", "file", "size", "sha256", "reason")
    for f in res.files:
        t.add_row(f.status, _safe(f.path), str(f.size or ""), (f.sha256 or "")[:16], _safe(f.reason))
    if res.files:
        out.print(t)
    out.print("  ".join(f"{k}: {v}" for k, v in res.counts.items()) + (f"  wiped: {res.wiped}" if res.wiped else ""))


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def verify(app: App, as_json: bool) -> None:
    """Re-read every stored object, recompute SHA-256 and check the custody log chain."""
    actor = _acting_name(app)
    if as_json:
        rep = verify_all(app, actor=actor)
        click.echo(json.dumps(rep.to_json(), ensure_ascii=False, indent=2))
    else:
        with Progress(TextColumn("verify"), BarColumn(), TextColumn("{task.completed} objects"), console=err) as prog:
            task = prog.add_task("verify", total=None)
            rep = verify_all(app, actor=actor, progress=lambda n, _b: prog.update(task, completed=n))
        for p in rep.problems:
            click.echo(f"PROBLEM {p.kind}: {p.message}")
        click.echo(f"{rep.objects_checked} objects ({rep.bytes_read} bytes) re-hashed, {rep.events_checked} custody "
                   f"events checked: {'OK' if rep.ok else f'{len(rep.problems)} problem(s)'}")
    sys.exit(0 if rep.ok else 1)


@click.command("simulate-dock")
@click.option("--kind", type=click.Choice(["gat947", "dcim", "android"]), default="gat947")
@click.option("--serial", default=None)
@click.option("--officer", default="310001")
@click.option("--unit", default="310115000000")
@click.option("--clips", default=2, show_default=True)
@click.option("--seconds", default=3.0, show_default=True)
@click.option("--photos", default=1, show_default=True)
@click.option("--clock-offset", default=0.0, show_default=True, help="Device clock error in seconds (+ = fast).")
@click.option("--name", default=None, help="Directory name under the dock root.")
@click.pass_obj
def simulate_dock(app: App, kind: str, serial: str | None, officer: str, unit: str, clips: int, seconds: float,
                  photos: int, clock_offset: float, name: str | None) -> None:
    """Write a realistic device volume (ffmpeg test clips, EXIF photos, identity file) into the dock root."""
    dev = SimDevice(kind=kind, serial=serial or {"gat947": "A123456", "dcim": "DC00001", "android": "MDT0001"}[kind],
                    officer=officer, unit=unit, clips=clips, seconds=seconds, photos=photos,
                    clock_offset_s=clock_offset)
    path = _dock_simulated(app, dev, name)
    click.echo(str(path))


COMMANDS = [daemon, ingest, verify, simulate_dock]
