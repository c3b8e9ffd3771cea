"""Subcommands of the spine: daemon, ingest, verify, simulate-dock."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

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
from catalog import fixity, stations
from catalog.anchor import Checkpointer
from catalog.audit import verify_all
from catalog.models import utcnow
from ingest.pipeline import ingest_volume
from ingest.spool import Spool
from ingest.simulate import SimDevice, build_volume, have_ffmpeg

if TYPE_CHECKING:
    from custody.demo import DemoState
    from ingest.daemon import Daemon

err = Console(stderr=True)


def _safe(text: str | None) -> str:
    """File names are data: escape rich markup and control characters before showing them."""
    if text is None:
        return ""
    return escape("".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text))


def _safe_plain(text: str) -> str:
    """A problem may quote forged rows: control characters are shown, never obeyed."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class _PlainFormatter(logging.Formatter):
    """One record, one line, never wrapped: for logs written to files, pipes and journald."""

    def __init__(self, tz: tzinfo | None) -> None:
        super().__init__()
        self.tz = tz

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).astimezone(self.tz)
        text = f"{when:%Y-%m-%d %H:%M:%S%z} {record.levelname:<7} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


# Custody's own loggers ("custody.*"; disclose/ names its logger after its module).
OWN_LOGGERS = ("custody", "disclose")


def setup_logging(verbose: bool = False, tz: tzinfo | None = None) -> None:
    """Log lines carry the station's local time with its offset (the bureau reads +08:00),
    whatever time zone the host runs in.  On a terminal rich lays them out; anywhere else
    (a file, a pipe, journald) each record is one plain line, never wrapped.  `-v` turns on
    Custody's own debug lines only: third-party libraries stay at warnings."""
    def stamp(dt: datetime) -> Text:
        local = dt.astimezone() if dt.tzinfo is None else dt  # rich passes the host's naive local time
        return Text((local.astimezone(tz) if tz else local).strftime("%Y-%m-%d %H:%M:%S%z"))

    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(console=err, show_path=False, markup=False, log_time_format=stamp)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter(tz))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "watchdog", "alembic", "exifread"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.command()
@click.option("--simulate-dock", "simulate", is_flag=True,
              help="Also import the demo bureau (demo catalogs only) and dock one simulated device of each kind. / 另外接入三台模拟设备并导入演示单位(仅演示库)")
@click.option("--exit-when-idle", is_flag=True, help="Stop once every docked volume is offloaded and indexed. / 所有接入设备卸载并索引完成后退出")
@click.option("-v", "--verbose", is_flag=True,
              help="Also Custody's own debug lines (not third-party libraries') / 另显示 Custody 自身的调试日志")
@click.pass_obj
def daemon(app: App, simulate: bool, exit_when_idle: bool, verbose: bool) -> None:
    """Watch the dock root and offload every docked device (the main job) / 监视接入目录,卸载每台接入的设备(主要任务)."""
    # deferred: the station composes every job worker (indexer, retention, demo bureau); a one-shot
    # `custody ingest` starts without loading them (issue 14: its start-up is part of every dock)
    from custody import demo, station

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
        # The demo bureau (config/demo/) goes into a demo catalog before any device docks.
        state = demo.prepare(app) or demo.load_state(app)
        threading.Thread(target=_simulate_later, args=(app, d, state), daemon=True).start()
    # The station's row in the catalog (custody stations, the station page): beats until the daemon stops.
    beats = threading.Thread(target=stations.run_heartbeat, args=(app, d.stop, "heartbeat"), name="heartbeat",
                             daemon=True)
    beats.start()
    d.run()
    beats.join(timeout=30)
    if exit_when_idle and any(r.state != "complete" for r in d.final_results()):
        sys.exit(1)


def _simulate_later(app: App, d: Daemon, state: DemoState) -> None:
    from custody import demo  # deferred with the daemon
    log = logging.getLogger("custody.daemon")
    try:
        time.sleep(1.0)
        if not have_ffmpeg():
            log.error("ffmpeg not found: cannot build simulated volumes")
            return
        # One volume per simulated device under a fixed name: a second run finds them still docked
        # (their recordings are already stored) instead of adding three more.
        root = app.settings.path(app.settings.station.dock_root)
        for name, dev in demo.sim_devices(state):
            if (root / name).is_dir():
                log.info("simulated %s device %s still docked at %s", dev.kind, dev.serial, name)
                continue
            path = _dock_simulated(app, dev, name)
            log.info("simulated %s device %s docked at %s", dev.kind, dev.serial, path.name)
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
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON summary. / 输出一份机器可读的 JSON 摘要")
@click.option("--wipe/--no-wipe", default=None, help="Override wipe_after_verify for this run. / 本次覆盖 wipe_after_verify 设置(校验后清除设备文件)")
@click.pass_obj
def ingest(app: App, path: Path, as_json: bool, wipe: bool | None) -> None:
    """Run the offload pipeline once on one device volume / 对一个设备卷执行一次卸载流程."""
    setup_logging(tz=app.settings.tz)
    logging.getLogger("custody").setLevel(logging.WARNING)
    if as_json:
        res = ingest_volume(app, path, wipe=wipe, actor=_acting_name(app))
        click.echo(json.dumps(res.to_json(), ensure_ascii=False, indent=2))
    else:
        res = _ingest_with_progress(app, path, wipe)
        _print_summary(res)
    if res.session is not None:
        Checkpointer(app).checkpoint("dock")  # the dock ended: anchor the custody log (docs/custody-log.md)
    # As the daemon does: remove spool copies already stored, verified and indexed (issue 14; with
    # `[indexer] workers = 0` they wait for `custody index --pending`, which cleans them then).
    Spool.of(app.settings).clean(app.catalog)
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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.option("--recent", is_flag=True, help="Report the stations' scheduled fixity checks of the last --days "
              "instead of re-reading everything (nothing is read from the store) / 最近的定期校验结果.")
@click.option("--days", default=7.0, show_default=True, help="With --recent: how far back. / 与 --recent 同用:回溯天数")
@click.pass_obj
def verify(app: App, as_json: bool, recent: bool, days: float) -> None:
    """Re-read every stored object, recompute SHA-256 and check the custody log chain / 重读每个存储对象,重算 SHA-256 并校验保管日志链."""
    if recent:
        _verify_recent(app, as_json, days)
    actor = _acting_name(app)
    if as_json:
        rep = verify_all(app, actor=actor)
        click.echo(json.dumps(rep.to_json(), ensure_ascii=False, indent=2))
    else:
        with Progress(TextColumn("verify"), BarColumn(), TextColumn("{task.completed} objects"), console=err) as prog:
            task = prog.add_task("verify", total=None)
            rep = verify_all(app, actor=actor, progress=lambda n, _b: prog.update(task, completed=n))
        for p in rep.problems:
            click.echo(f"PROBLEM {p.kind}: {_safe_plain(p.message)}")
        click.echo(f"{rep.objects_checked} objects ({rep.bytes_read} bytes) re-hashed, {rep.events_checked} custody "
                   f"events ({rep.signatures_checked} signatures) and {rep.checkpoints_checked} checkpoints checked: "
                   f"{'OK' if rep.ok else f'{len(rep.problems)} problem(s)'}")
    sys.exit(0 if rep.ok else 1)


def _verify_recent(app: App, as_json: bool, days: float) -> None:
    """The scheduled checks (catalog.fixity) of the last `days`: counts per station and every
    failure.  Exit 1 when any check failed."""
    since = utcnow() - timedelta(days=days)
    with app.catalog.session() as s:
        summ = fixity.summary(s, since)
        failures = fixity.recent(s, since, failures_only=True)
    if as_json:
        click.echo(json.dumps({"since": since.isoformat(), **summ, "ok": not failures, "failures": [
            {"at": f.at.isoformat(), "media_id": f.media_id, "station": f.station, "outcome": f.outcome,
             "problem": f.problem, "subject": f.subject} for f in failures]}, ensure_ascii=False, indent=2))
    else:
        tz = app.settings.tz
        for f in failures:
            click.echo(f"FIXITY FAILED {f.at.astimezone(tz):%Y-%m-%d %H:%M:%S} station {_safe(f.station)} "
                       f"media {f.media_id}: {_safe(f.problem)}")
        per = ", ".join(f"{_safe(k)} {v}" for k, v in sorted(summ["stations"].items())) or "none / 无"
        click.echo(f"scheduled fixity checks since {since.astimezone(tz):%Y-%m-%d %H:%M} "
                   f"(UTC{app.settings.station.timezone}): {summ['checked']} checked ({per}), "
                   f"{summ['failed']} failed / 定期校验 {summ['checked']} 次，失败 {summ['failed']} 次")
    sys.exit(1 if failures else 0)


@click.command("simulate-dock")
@click.option("--kind", type=click.Choice(["gat947", "dcim", "android"]), default="gat947", show_default=True,
              help="Device profile to imitate / 模拟的设备类型")
@click.option("--serial", default=None, help="Device serial (default per kind) / 设备编号(默认按类型)")
@click.option("--officer", default="310001", show_default=True, help="Officer number on the device / 设备上的执法人员编号")
@click.option("--unit", default="310115000000", show_default=True, help="Unit code on the device / 设备上的单位代码")
@click.option("--clips", default=2, show_default=True, help="Video clips to record / 视频片段数")
@click.option("--seconds", default=3.0, show_default=True, help="Length of each clip in seconds / 每段视频秒数")
@click.option("--photos", default=1, show_default=True, help="Photos to take / 照片数")
@click.option("--clock-offset", default=0.0, show_default=True, help="Device clock error in seconds (+ = fast). / 设备时钟误差(秒,正数为快)")
@click.option("--name", default=None, help="Directory name under the dock root. / 接入目录下的目录名")
@click.pass_obj
def simulate_dock(app: App, kind: str, serial: str | None, officer: str, unit: str, clips: int, seconds: float,
                  photos: int, clock_offset: float, name: str | None) -> None:
    """Write a realistic device volume (ffmpeg test clips, EXIF photos, identity file) into the dock root / 在接入目录中生成一个模拟设备卷(测试视频、照片、身份文件)."""
    dev = SimDevice(kind=kind, serial=serial or {"gat947": "A123456", "dcim": "DC00001", "android": "MDT0001"}[kind],
                    officer=officer, unit=unit, clips=clips, seconds=seconds, photos=photos,
                    clock_offset_s=clock_offset)
    path = _dock_simulated(app, dev, name)
    click.echo(str(path))


COMMANDS = [daemon, ingest, verify, simulate_dock]
