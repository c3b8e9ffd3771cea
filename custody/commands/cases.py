"""Case commands: reference-data imports, manual link/unlink, the review queue and search.

    custody import officers|devices|assignments|cases|units FILE
    custody link MEDIA CASE --reason TEXT
    custody unlink MEDIA CASE --reason TEXT
    custody review-queue [--json]
    custody search [--case NO] [--officer BADGE] [--device SERIAL] [--enterprise TEXT]
                   [--from DATE] [--to DATE] [--unlinked] [--limit N] [--json]
"""
from __future__ import annotations

import json
import sys
from datetime import tzinfo
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from catalog.accounts import Actor, require, resolve_actor
from custody.commands.common import acting
from core.errors import PermissionDenied
from cases import linking, refdata
from catalog.models import Device, Media, Officer, ReviewItem
from cases.search import Criteria, SearchRow, parse_when, search
from catalog.access import can_see_case, can_see_media, media_visible_clause
from catalog import custody_log




def _check_scope(session: Session, actor: Actor, media: Media, case: Any) -> None:
    """Reviewers limited to units act only on recordings and cases of those units (as on the web)."""
    if can_see_media(session, actor, media) and can_see_case(session, actor, case):
        return

    custody_log.record(session, "refused", actor=actor.username, outcome="refused", media_id=media.id,
                       subject=f"case:{case.case_no}", detail={"why": "outside the account's units"})
    session.commit()
    raise PermissionDenied(f"{actor.username} does not cover the unit of recording {media.id} or case {case.case_no}")


def _console() -> Console:
    # Wide when piped, so rows are not folded into 80 columns in logs and files.
    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def _local(dt: Any, tz: tzinfo) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if dt else "—"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# --------------------------------------------------------------------------- import
@click.command("import")
@click.argument("kind", type=click.Choice(refdata.KINDS))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def import_cmd(app: Any, kind: str, file: Path) -> None:
    """Import reference data from CSV or JSON (UTF-8) / 导入基础数据.

    Rows are upserted on their key; a file with any bad row changes nothing.
    Linking re-runs for the recordings the change concerns."""
    with app.catalog.session() as s:
        actor = acting(app, s, "import", f"refdata:{kind}")
        try:
            rep = refdata.import_file(s, app.settings, kind, file, actor.username)
        except refdata.ImportRejected as err:
            s.rollback()
            refdata.record_rejected(s, kind, file, actor.username, err)
            s.commit()
            raise
    click.echo(f"imported {kind} from {file}: {rep.rows} row(s), {rep.created} created, {rep.updated} updated, "
               f"{rep.unchanged} unchanged" + (f", {rep.closed} assignment(s) closed" if rep.closed else "")
               + f"; relinked {rep.relinked} recording(s)")
    for note in rep.notes:
        click.echo(f"  note: {note}")
    for warning in rep.warnings:
        click.echo(f"  warning / 警告: {warning}")


# --------------------------------------------------------------------------- link / unlink
@click.command("link")
@click.argument("media_ref", metavar="MEDIA")
@click.argument("case_no", metavar="CASE")
@click.option("--reason", required=True, help="Why this recording belongs to the case (kept in the custody log). / 该录像属于该案件的理由(记入保管日志)")
@click.pass_obj
def link_cmd(app: Any, media_ref: str, case_no: str, reason: str) -> None:
    """Link a recording (id or SHA-256) to a case by hand / 人工关联."""
    with app.catalog.session() as s:
        actor = acting(app, s, "link", f"case:{case_no}")
        media, case = linking.find_media(s, media_ref), linking.find_case(s, case_no)
        _check_scope(s, actor, media, case)
        linking.manual_link(s, media, case, actor.username, reason)
    click.echo(f"linked recording {media.id} ({media.sha256[:12]}) to {case.case_no}")


@click.command("unlink")
@click.argument("media_ref", metavar="MEDIA")
@click.argument("case_no", metavar="CASE")
@click.option("--reason", required=True, help="Why this recording does not belong to the case. / 该录像不属于该案件的理由")
@click.pass_obj
def unlink_cmd(app: Any, media_ref: str, case_no: str, reason: str) -> None:
    """Rule a recording out of a case (removes a link; automatic linking will not re-add it) / 解除关联."""
    with app.catalog.session() as s:
        actor = acting(app, s, "link", f"case:{case_no}")
        media, case = linking.find_media(s, media_ref), linking.find_case(s, case_no)
        _check_scope(s, actor, media, case)
        _, removed = linking.manual_unlink(s, media, case, actor.username, reason)
    what = "unlinked" if removed else "ruled out (it was not linked)"
    click.echo(f"recording {media.id} ({media.sha256[:12]}) {what}: {case.case_no}")


# --------------------------------------------------------------------------- review queue
def _review_json(s: Session, item: ReviewItem, tz: tzinfo) -> dict[str, Any]:
    m = s.get(Media, item.media_id)
    dev = s.get(Device, m.device_id) if m and m.device_id else None
    off = s.get(Officer, m.officer_id) if m and m.officer_id else None
    return {
        "id": item.id, "media_id": item.media_id, "sha256": m.sha256 if m else None,
        "device": dev.serial if dev else None,
        "officer": off.badge if off else (m.officer_badge if m else None),
        "recorded_start": m.recorded_start.astimezone(tz).isoformat() if m and m.recorded_start else None,
        "recorded_end": m.recorded_end.astimezone(tz).isoformat() if m and m.recorded_end else None,
        "reason": item.reason, "candidates": item.candidates,
        "created_at": item.created_at.astimezone(tz).isoformat(),
    }


@click.command("review-queue")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list. / 输出 JSON 列表")
@click.pass_obj
def review_queue_cmd(app: Any, as_json: bool) -> None:
    """Recordings whose case is doubtful, waiting for a reviewer / 待人工审核.

    Resolve an entry with `custody link MEDIA CASE --reason ...` or `custody unlink ...`."""
    tz = app.settings.tz
    with app.catalog.session() as s:
        actor = acting(app, s, "review", "review-queue")
        items = [_review_json(s, it, tz) for it in linking.open_reviews(s)
                 if can_see_media(s, actor, s.get(Media, it.media_id))]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("review queue is empty / 无待审核条目")
        return
    table = Table("ID", "录像/Media", "开始/Start", "设备/Device", "警号/Officer", "原因/Reason",
                  "候选/Candidates", show_lines=True)
    for it in items:
        cands = "\n".join(f"{c['case_no']} ({c['score']})" for c in it["candidates"]) or "—"
        start = it["recorded_start"][:19].replace("T", " ") if it["recorded_start"] else "—"
        table.add_row(*(escape(c) for c in (str(it["id"]), f"{it['media_id']} {(it['sha256'] or '')[:12]}", start,
                                            it["device"] or "—", it["officer"] or "—", it["reason"], cands)))
    _console().print(table)


# --------------------------------------------------------------------------- search
def _print_rows(rows: list[SearchRow], tz: tzinfo) -> None:
    if not rows:
        click.echo("no recordings found / 未找到录像")
        return
    table = Table("ID", "开始/Start", "结束/End", "时长/Duration", "案件/Case", "警号/Officer", "设备/Device",
                  "关联/Link", "标记/Flags")
    for r in rows:
        link = f"[{r.link_method}] {r.link_reason}" if r.link_method else "—"
        # Reasons are free text (a reviewer's words): never let them be read as console markup.
        table.add_row(*(escape(c) for c in (str(r.id), _local(r.recorded_start, tz), _local(r.recorded_end, tz),
                                            _duration(r.duration), r.case or "—", r.officer or "—", r.device or "—",
                                            link, ", ".join(r.flags) or "—")))
    _console().print(table)
    click.echo(f"{len(rows)} row(s); local times ({tz})")


@click.command("search")
@click.option("--case", "case_no", metavar="NO",
              help="案件编号或执法系统记录号 / Case number or the enforcement system's record id.")
@click.option("--officer", metavar="BADGE", help="Officer badge (警号).")
@click.option("--device", metavar="SERIAL", help="Device serial. / 设备编号")
@click.option("--enterprise", metavar="TEXT", help="Part of the inspected enterprise's name. / 被检查企业名称的一部分")
@click.option("--from", "date_from", metavar="DATE", help="Recordings starting on/after (local date or time). / 开始于该日期/时间及以后的录像(本地时间)")
@click.option("--to", "date_to", metavar="DATE", help="... and up to (a date includes the whole day). / ……直至该日期/时间(只给日期则含当天全天)")
@click.option("--unlinked", is_flag=True, help="Only recordings linked to no case. / 只列出未关联任何案件的录像")
@click.option("--limit", type=int, default=1000, show_default=True, help="At most this many rows (0: all). / 最多列出的行数(0 为全部)")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list. / 输出 JSON 列表")
@click.pass_obj
def search_cmd(app: Any, case_no: str | None, officer: str | None, device: str | None, enterprise: str | None,
               date_from: str | None, date_to: str | None, unlinked: bool, limit: int, as_json: bool) -> None:
    """Find recordings, in time order / 检索录像."""
    tz = app.settings.tz
    crit = Criteria(case_no=case_no, officer=officer, device=device, enterprise=enterprise,
                    start=parse_when(date_from, tz) if date_from else None,
                    end=parse_when(date_to, tz, end_of_day=True) if date_to else None,
                    unlinked=unlinked, limit=limit or None)
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)
        # Inspectors may search their own recordings only; unit-limited reviewers their units'.
        require(s, actor, "view_own" if actor.role == "inspector" else "view", subject="search")
        rows = search(s, crit, scope=media_visible_clause(actor))
    if as_json:
        click.echo(json.dumps([r.as_json(tz) for r in rows], ensure_ascii=False, indent=2))
    else:
        _print_rows(rows, tz)


COMMANDS = [import_cmd, link_cmd, unlink_cmd, review_queue_cmd, search_cmd]
