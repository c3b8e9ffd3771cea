"""`custody report ratio|coverage|usage` (registered by custody.cli).

Reports need the `reports` capability (administrator, auditor).  Producing one is
logged in the custody log (action `report`, with its parameters): a report lists
recordings and people, and who looked at what is part of custody.
"""
from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from catalog.accounts import require, resolve_actor
from catalog.app import App
from core.errors import CustodyError
from catalog import custody_log
from reports.coverage import CoverageOptions, coverage_report
from reports.i18n import Lang, LANGS
from reports.model import Report
from reports.periods import local_today, parse_day
from reports.ratio import RatioOptions, ratio_report
from reports.render import FORMATS, render
from reports.usage import UsageOptions, usage_report


def _output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--detail", is_flag=True, help="Table/CSV: also list the officers, devices, cases and "
                     "recordings behind each figure (JSON and HTML always include them). / "
                     "表格/CSV 另列出每项指标对应的人员、设备、案件和录像(JSON 与 HTML 总是包含)")(f)
    f = click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
                     help="Write to FILE instead of standard output. / 写入文件而非标准输出")(f)
    f = click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True,
                     help="Labels: Simplified Chinese or English. / 标签语言:简体中文或英文")(f)
    f = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                     help="Output format / 输出格式")(f)
    f = click.option("--unit", default=None, help="Unit code: this unit and the units under it. / 单位代码:该单位及其全部下级单位")(f)
    return f


def _kinds(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds:
        raise CustodyError("--kinds needs at least one device kind, e.g. camera,terminal")
    return kinds


def _produce(app: App, kind: str, build: Callable[[Session], Report], params: dict[str, Any], fmt: str,
             lang: Lang, out: str | None, detail: bool) -> None:
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)
        require(s, actor, "reports", subject=f"report:{kind}")
        report = build(s)
        custody_log.record(s, "report", actor=actor.username, subject=f"report:{kind}",
                           detail={"params": params, "format": fmt, "out": out})
    _write(render(report, fmt, lang, detail, _width(out)), fmt, out)


def _width(out: str | None) -> int:
    if out is None and sys.stdout.isatty():
        return max(100, shutil.get_terminal_size((160, 40)).columns)
    return 200


def _write(text: str, fmt: str, out: str | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    # A byte-order mark lets spreadsheet programs read Chinese CSV headers as UTF-8.
    encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
    try:
        Path(out).write_text(text, encoding=encoding)
    except OSError as e:
        raise CustodyError(f"cannot write the report to {out}: {e.strerror}") from e
    click.echo(f"report written to {out}", err=True)


@click.group("report")
def report() -> None:
    """Administrator reports / 管理报表: ratio, coverage, usage."""

@report.command("ratio")
@click.option("--at", "at", default=None, metavar="DATE", help="Local date (YYYY-MM-DD); default today. / 统计日(本地日期 YYYY-MM-DD),默认今天")
@click.option("--standard", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Officers per device to hold every unit to (overrides unit and config standards). / 所有单位统一适用的配备标准(人/台,覆盖单位及配置中的标准)")
@click.option("--kinds", default=None, help="Device kinds counted, e.g. camera,terminal "
              "(default: reports.counted_device_kinds). / 计入的设备类型,如 camera,terminal")
@_output_options
@click.pass_obj
def ratio(app: App, at: str | None, standard: float | None, kinds: str | None, unit: str | None, fmt: str,
          lang: Lang, out: str | None, detail: bool) -> None:
    """Certified officers per recording device, per unit and in total / 执法人员与记录设备配比."""
    day = parse_day(at, "--at") if at else local_today(app.settings.tz)
    opts = RatioOptions(at=day, unit=unit, standard=standard, kinds=_kinds(kinds))
    params = {"at": day.isoformat(), "unit": unit, "standard": standard, "kinds": opts.kinds}
    _produce(app, "ratio", lambda s: ratio_report(s, app.settings, opts), params, fmt, lang, out, detail)

@report.command("coverage")
@click.option("--from", "first", required=True, metavar="DATE", help="First local day of the period. / 统计期间第一天(本地日期)")
@click.option("--to", "last", required=True, metavar="DATE", help="Last local day of the period (included). / 统计期间最后一天(含)")
@click.option("--kinds", default=None, help="Device kinds checked for docking (default: "
              "reports.counted_device_kinds). / 检查接入情况的设备类型")
@click.option("--deadline-hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Upload deadline after a recording ends (default: reports.upload_deadline_hours). / 录像结束后的上传时限,小时(默认 reports.upload_deadline_hours)")
@click.option("--undocked-days", type=click.IntRange(min=1), default=None,
              help="A device not docked for longer is listed (default: reports.undocked_days). / 超过该天数未接入的设备被列出(默认 reports.undocked_days)")
@click.option("--clock-threshold", type=click.FloatRange(min=0), default=None,
              help="Seconds of clock error that list a device (default: reports.clock_error_threshold_seconds). / 列出设备的时钟误差阈值,秒(默认 reports.clock_error_threshold_seconds)")
@click.option("--unlinked-days", type=click.IntRange(min=0), default=None,
              help="A recording unlinked for longer is listed (default: reports.unlinked_days). / 超过该天数仍未关联的录像被列出(默认 reports.unlinked_days)")
@_output_options
@click.pass_obj
def coverage(app: App, first: str, last: str, kinds: str | None, deadline_hours: float | None,
             undocked_days: int | None, clock_threshold: float | None, unlinked_days: int | None,
             unit: str | None, fmt: str, lang: Lang, out: str | None, detail: bool) -> None:
    """Full-process recording compliance over a period / 执法全过程记录合规."""
    opts = CoverageOptions(first=parse_day(first, "--from"), last=parse_day(last, "--to"), unit=unit,
                           kinds=_kinds(kinds), deadline_hours=deadline_hours, undocked_days=undocked_days,
                           clock_threshold_seconds=clock_threshold, unlinked_days=unlinked_days)
    params = {"from": first, "to": last, "unit": unit, "kinds": opts.kinds, "deadline_hours": deadline_hours,
              "undocked_days": undocked_days, "clock_threshold": clock_threshold, "unlinked_days": unlinked_days}
    # The long lists and chart data are fetched only when the output shows them.
    details, charts = detail or fmt in ("json", "html"), fmt == "html"
    _produce(app, "coverage", lambda s: coverage_report(s, app.settings, opts, details, charts), params, fmt,
             lang, out, detail)

@report.command("usage")
@click.option("--from", "first", default=None, metavar="DATE", help="First local day (default: all earlier). / 第一天(本地日期,默认不限)")
@click.option("--to", "last", default=None, metavar="DATE", help="Last local day, included (default: today). / 最后一天(含,默认今天)")
@click.option("--kinds", default=None, help="Only these device kinds (default: all). / 只统计这些设备类型(默认全部)")
@_output_options
@click.pass_obj
def usage(app: App, first: str | None, last: str | None, kinds: str | None, unit: str | None, fmt: str,
          lang: Lang, out: str | None, detail: bool) -> None:
    """Hours recorded, docks and last dock per device and per officer / 设备与人员使用情况."""
    opts = UsageOptions(first=parse_day(first, "--from") if first else None,
                        last=parse_day(last, "--to") if last else local_today(app.settings.tz),
                        unit=unit, kinds=_kinds(kinds))
    params = {"from": first, "to": opts.last.isoformat(), "unit": unit, "kinds": opts.kinds}
    _produce(app, "usage", lambda s: usage_report(s, app.settings, opts), params, fmt, lang, out, detail)


COMMANDS = [report]
