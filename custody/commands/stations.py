"""`custody stations`: every station sharing the catalog, and whether it is alive (issue 16).

Also `custody station install`: writes the files under deploy/ (systemd units, udev rule, mount
helper, production config) filled in for this machine, for a bureau's IT to review and install.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from sqlalchemy import select

from catalog.app import App
from catalog.models import DockSession, utcnow
from catalog.stations import status
from core.errors import CustodyError
from core.settings import REPO_ROOT
from custody.commands.common import acting, echo_json, safe

STATE_TEXT = {"up": "up / 在线", "down": "DOWN / 心跳中断", "stopped": "stopped / 已停止",
              "unknown": "unknown / 未登记"}
DEPLOY_DIR = REPO_ROOT / "deploy"


def _gib(n: int | None) -> str:
    """Bytes as GiB for people: one decimal, rounded half up."""
    if n is None:
        return "—"
    return f"{(Decimal(n) / Decimal(1024 ** 3)).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} GiB"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(Decimal(seconds).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h"


@click.command("stations")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (raw values, UTC instants). / 机器可读输出(原始值,UTC 时间)")
@click.pass_obj
def stations(app: App, as_json: bool) -> None:
    """Every station on this catalog: heartbeat, docked devices, offloads, spool, queue, failures / 本目录库的所有工作站:心跳、接入设备、卸载、缓存、队列、故障.

    Exit code 1 when a station is down (its heartbeat stopped without a clean stop).
    """
    with app.catalog.session() as s:
        acting(app, s, "reports", "stations")
        rows, queue = status(s, app.settings)
    if as_json:
        echo_json({"stations": [r.to_json() for r in rows], "queue": queue})
    else:
        tz = app.settings.tz
        out = Console()
        t = Table("station / 采集站", "state / 状态", "heartbeat / 心跳", "docked / 在坞设备",
                  "offloads / 导入中", "spool free / 缓存余量", "waiting / 待上传", "jobs / 任务",
                  "failures (7 d) / 失败(7天)")
        for r in rows:
            beat = (r.heartbeat_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") + f" ({_age(r.heartbeat_age_seconds)})"
                    if r.heartbeat_at else "—")
            docked = ", ".join(safe(d.get("serial") or d.get("volume")) for d in r.docked) or "—"
            fails = f"docks {r.failed_docks}, jobs {r.failed_jobs}, fixity {r.fixity_failures}"
            style = "bold red" if r.state == "down" else None
            t.add_row(safe(r.name), STATE_TEXT.get(r.state, r.state), beat, docked, str(r.running_offloads),
                      _gib(r.spool_free_bytes), str(r.spool_waiting), str(r.jobs_running), fails, style=style)
        out.print(t)
        out.print("queue / 任务队列: " + ("  ".join(f"{k} {v}" for k, v in sorted(queue.items())) or "empty / 空")
                  + f"   (times UTC{app.settings.station.timezone})")
        for r in rows:
            for f in r.recent_failures[:5]:
                at = f["at"].astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if f["at"] else ""
                out.print(f"  {safe(r.name)} {at} {f['action']}: {safe(f.get('reason') or f.get('subject') or '')}")
    sys.exit(1 if any(r.state == "down" for r in rows) else 0)


FILES = {
    "custody-daemon.service": "/etc/systemd/system/custody-daemon.service",
    "custody-serve.service": "/etc/systemd/system/custody-serve.service",
    "custody-dock@.service": "/etc/systemd/system/custody-dock@.service",
    "99-custody-dock.rules": "/etc/udev/rules.d/99-custody-dock.rules",
    "custody-dock-mount": "/usr/local/sbin/custody-dock-mount",
    "custody.production.toml": "/etc/custody/custody.toml",
}


@click.group("station")
def station() -> None:
    """This station's installation / 本采集站的安装."""


@station.command("install")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the files here (default: only print where each one goes). / 写入此目录(默认只列出各文件的位置)")
@click.option("--name", default=None, help="Station name for the config (default: [station].name). / 配置中的工作站名称(默认 [station].name)")
@click.pass_obj
def station_install(app: App, out_dir: Path | None, name: str | None) -> None:
    """Write the station's systemd units, udev rule, mount helper and production config (see docs/stations.md) / 生成工作站的 systemd 单元、udev 规则、挂载脚本和生产配置."""
    if not DEPLOY_DIR.is_dir():
        raise CustodyError(f"{DEPLOY_DIR} is missing from this installation")
    station = name or app.station
    subst = {"@STATION@": station, "@CUSTODY@": str(Path(sys.executable).with_name("custody")),
             "@DOCK_ROOT@": str(app.settings.path(app.settings.station.dock_root))}
    for fname, target in FILES.items():
        text = (DEPLOY_DIR / fname).read_text(encoding="utf-8")
        for k, v in subst.items():
            text = text.replace(k, v)
        if out_dir is None:
            click.echo(f"deploy/{fname} -> {target}")
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        dest = out_dir / fname
        dest.write_text(text, encoding="utf-8")
        if fname == "custody-dock-mount":
            dest.chmod(0o755)
        click.echo(f"{dest}  (install as {target})")
    click.echo("then: systemctl daemon-reload; udevadm control --reload; systemctl enable --now custody-daemon "
               "custody-serve  (docs/stations.md) / 安装步骤见 docs/stations.md", err=True)


DONE_STATES = ("complete", "resumed")
GAVE_UP_STATES = ("incomplete", "failed", "unrecognised")
RETRY_GRACE = timedelta(seconds=90)  # the daemon tries a refused dock again while it stays docked


@station.command("wait")
@click.argument("volume", type=click.Path(path_type=Path))
@click.option("--since", "since_text", default=None, help="Only docks started at or after this ISO instant "
              "(the mount time; default: now). / 只看此时刻(挂载时间)及以后开始的接入")
@click.option("--timeout", default=86400.0, show_default=True, help="Seconds to wait at most. / 最多等待秒数")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between looks at the catalog. / 查询目录库的间隔秒数")
@click.pass_obj
def station_wait(app: App, volume: Path, since_text: str | None, timeout: float, poll: float) -> None:
    """Wait until this station has offloaded VOLUME (the mount helper then unmounts it) / 等待本工作站卸载完该设备卷(随后由挂载脚本卸载).

    Exit 0: complete (with wipe_after_verify off, already once every file is in the spool:
    the device is safe to remove).  Exit 1: the dock ended incomplete, failed or unrecognised
    (and no retry followed within 90 s), or the timeout passed.
    """
    since = datetime.fromisoformat(since_text) if since_text else utcnow()
    if since.tzinfo is None:
        raise CustodyError("--since needs an instant with its offset, e.g. 2026-01-01T08:00:00+08:00")
    path = str(Path(os.path.abspath(volume)))
    done = DONE_STATES + (() if app.settings.station.wipe_after_verify else ("offloaded",))
    deadline = time.monotonic() + timeout
    while True:
        with app.catalog.session() as s:
            d = s.execute(select(DockSession).where(DockSession.station == app.station,
                                                    DockSession.volume_path == path,
                                                    DockSession.started_at >= since - timedelta(seconds=5))
                          .order_by(DockSession.id.desc()).limit(1)).scalar_one_or_none()
            state, ended = (d.state, d.ended_at) if d is not None else (None, None)
        if state in done:
            click.echo(f"{path}: {state} — safe to remove / 可以拔出")
            sys.exit(0)
        if state in GAVE_UP_STATES and ended is not None and utcnow() - ended > RETRY_GRACE:
            click.echo(f"{path}: {state} — not complete / 未完成 (custody stations)", err=True)
            sys.exit(1)
        if time.monotonic() >= deadline:
            click.echo(f"{path}: still {state or 'not started'} after {timeout:g} s / 等待超时", err=True)
            sys.exit(1)
        time.sleep(poll)


COMMANDS = [stations, station]
