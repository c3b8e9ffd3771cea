"""`custody`: one CLI, its subcommands declared in `custody/commands/<area>.py`.

The table below is the shell's whole command list, in the order of the data's path: each
top-level command, the module that declares it, and its one-line bilingual summary (shown by
`custody --help`).  A module is imported only when one of its commands runs, so help and light
commands start without loading the indexer, the web app or Alembic.  A test checks that the
table and the modules' `COMMANDS` lists agree.
"""
from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from typing import Any, NamedTuple

import click

from core.errors import CatalogUnavailable, CustodyError


class Entry(NamedTuple):
    module: str
    summary: str


# To add a top-level command: declare it in custody/commands/<area>.py, list it in that module's
# COMMANDS, and add one row here (name, module, "English / 中文" summary).  tests/custody/test_cli_shell.py
# fails when the two disagree.
COMMANDS: dict[str, Entry] = {
    # dock -> spool -> store
    "daemon": Entry("ingest", "Watch the dock root and offload every docked device / 坞站守护进程(主任务)."),
    "ingest": Entry("ingest", "Offload one device volume once / 对单个设备卷执行一次导入."),
    "simulate-dock": Entry("ingest", "Write a realistic simulated device volume / 生成模拟设备卷."),
    "verify": Entry("ingest", "Re-hash stored objects and check the custody log / 校验存储对象与监管链."),
    "stations": Entry("stations", "Every station on the catalog: heartbeat, docks, spool, failures / 各采集站状态."),
    "station": Entry("stations", "Install this station: systemd, udev, mount helper, config / 安装采集站."),
    # index
    "media": Entry("media", "Recordings: list, show, get, keyframes / 录像列表、详情、下载与关键帧."),
    "index": Entry("media", "Run the job queue by hand / 手动执行索引任务."),
    "reindex": Entry("media", "Index recordings again / 重新索引录像."),
    "clock": Entry("media", "Device clock corrections / 设备时钟校正."),
    # link
    "import": Entry("cases", "Import reference data from CSV or JSON / 导入基础数据."),
    "link": Entry("cases", "Link a recording to a case by hand / 人工关联."),
    "unlink": Entry("cases", "Rule a recording out of a case / 解除关联."),
    "review-queue": Entry("cases", "Recordings whose case is doubtful / 待人工审核."),
    "search": Entry("cases", "Find recordings, in time order / 检索录像."),
    # report / retain / disclose
    "report": Entry("reports", "Administrator reports: ratio, coverage, usage / 管理报表."),
    "retention": Entry("retention", "Retention rules, plans and purges / 保留期与清理."),
    "hold": Entry("retention", "Legal holds / 法律保全."),
    "tag": Entry("retention", "Reviewer flags with retention meaning / 审核标记."),
    "storage": Entry("retention", "Object store checks / 存储自检."),
    "export": Entry("web", "Export a case as a BagIt package / 导出案件证据包."),
    "share": Entry("share", "Revocable links for recipients, receipts / 分享证据与回执."),
    "redact": Entry("disclose", "Make a redacted derived copy (original untouched) / 生成打码衍生副本."),
    "redaction": Entry("disclose", "Redacted copies: show the log, approve / 处理副本:查看与批准."),
    # people and the web app
    "users": Entry("web", "Accounts and roles / 账号管理."),
    "serve": Entry("web", "Start the web app / 启动网页服务."),
    # machines: terminals that upload from the field, the enforcement system's API (issue 15)
    "devices": Entry("devices", "Enrol terminals for field upload / 终端登记与上传令牌."),
    "api-token": Entry("devices", "API tokens for the enforcement system / 接口令牌."),
    # the custody log's anchors and the catalog's recoverability
    "log": Entry("logs", "Custody log checkpoints, export, station key / 监管日志锚定与导出."),
    "backup": Entry("logs", "Back the catalog up into the store / 目录库备份."),
    "restore": Entry("logs", "Restore a backup into an empty catalog / 从备份恢复目录库."),
    "catalog": Entry("logs", "Rebuild the catalog from the store / 从对象存储重建目录库."),
}


class CustodyGroup(click.Group):
    """Loads a subcommand's module when it is used, and turns the tool's own errors into a
    one-line message and a meaningful exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(f"custody.commands.{entry.module}")
        cmd = next(c for c in module.COMMANDS if c.name == name)
        cmd.short_help = entry.summary
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands / 命令"):
            formatter.write_dl([(name, e.summary) for name, e in COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CustodyError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except Exception as e:
            if not _catalog_unreachable(e):
                raise
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            click.echo(f"error: the catalog database is unreachable: {reason}", err=True)
            sys.exit(CatalogUnavailable.exit_code)


def _catalog_unreachable(e: Exception) -> bool:
    """The catalog database did not answer (server down, wrong URL, disk gone)."""
    from sqlalchemy.exc import InterfaceError, OperationalError  # deferred: SQLAlchemy is loaded by then anyway

    return isinstance(e, OperationalError | InterfaceError)


@click.group(cls=CustodyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML config (else $CUSTODY_CONFIG, else the shipped config/custody.toml) / 配置文件.")
@click.option("--user", "user", default=None, help="Act as this account (else the OS user's account) / 以该账号操作.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, user: str | None) -> None:
    """Custody — body-camera and media evidence / 执法音视频证据管理."""
    # deferred: `custody --help` needs neither the settings (pydantic, ~0.1 s) nor the catalog's
    # wiring (SQLAlchemy); a subcommand runs this first, so they load here (issue 14, start-up)
    from catalog.app import App
    from core.settings import load_settings

    app = App(load_settings(config_file), user=user)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main() -> None:
    cli(prog_name="custody")


def run() -> None:
    """The `custody` program (console script and `python -m custody.cli`): `main()`, then a quick
    exit.  Tearing the interpreter down module by module after a command costs ~0.2 s here
    (collecting SQLAlchemy's and pydantic's objects) - a third of a light command's time and part
    of every `custody ingest` (issue 14).  By then the command has closed what it owns (the App
    closes on the context's close), every atexit handler still runs and the standard streams are
    flushed; only with no other thread alive, so a daemon's workers always finish normally."""
    try:
        main()
        code: int = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:  # SystemExit("message"): printed to stderr, status 1, as Python does
            print(e.code, file=sys.stderr)
            code = 1
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # logging.shutdown, weakref finalizers (temporary directories), pools
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can be said on it
    os._exit(code)


if __name__ == "__main__":
    run()
