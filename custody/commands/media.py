"""Indexer commands: `custody media ...`, `custody index`, `custody reindex`, `custody clock ...`.

Every command acts as a named account (--user, else the OS user's account) and checks
its role; views, exports and clock corrections are written to the custody log.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor, require, resolve_actor
from custody.commands.common import acting, echo_json, iso, safe
from core.errors import CustodyError, NotFound
from catalog import custody_log, jobs
from catalog.models import ClockCorrection, Derivative, Device, Media, Officer










# --------------------------------------------------------------------------- rows -> JSON
def media_row(m: Media, serial: str | None, badge: str | None, tz: tzinfo) -> dict[str, Any]:
    return {"id": m.id, "sha256": m.sha256, "size": m.size, "kind": m.kind, "device": serial,
            "officer": badge or m.officer_badge, "recorded_at": iso(m.recorded_start, tz),
            "flags": list(m.flags or []), "storage_key": m.storage_key}


def _load(s: Session, media_id: int) -> tuple[Media, str | None, str | None]:
    row = s.execute(
        select(Media, Device.serial, Officer.badge)
        .outerjoin(Device, Device.id == Media.device_id).outerjoin(Officer, Officer.id == Media.officer_id)
        .where(Media.id == media_id)
    ).first()
    if row is None:
        raise NotFound(f"no recording with id {media_id}")
    return row[0], row[1], row[2]


def _device_reading(m: Media, tz: tzinfo) -> str | None:
    """The device clock's reading with the zone it was read in (kept in the time readings)."""
    reading = ((m.meta or {}).get("time_readings") or {}).get(m.time_source or "")
    if reading and reading.get("device_time"):
        return str(reading["device_time"])
    return iso(m.device_start, tz)


def _keyframes(s: Session, media_id: int) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(keyframes, contact sheet key, photo thumbnail key) of the current derivatives."""
    rows = s.execute(
        select(Derivative).where(Derivative.media_id == media_id, Derivative.purged_at.is_(None))
        .order_by(Derivative.offset_seconds, Derivative.id)
    ).scalars().all()
    thumbs = {d.offset_seconds: d.storage_key for d in rows if d.kind == "thumbnail"}
    kfs = [{"offset_seconds": d.offset_seconds, "storage_key": d.storage_key,
            "thumbnail_key": thumbs.get(d.offset_seconds), "reason": d.reason, "score": d.score,
            "width": d.width, "height": d.height} for d in rows if d.kind == "keyframe"]
    sheet = next((d.storage_key for d in rows if d.kind == "contact_sheet"), None)
    return kfs, sheet, thumbs.get(None)


def media_detail(s: Session, m: Media, serial: str | None, badge: str | None, tz: tzinfo) -> dict[str, Any]:
    kfs, sheet, photo_thumb = _keyframes(s, m.id)
    meta = m.meta or {}
    return {
        **media_row(m, serial, badge, tz),
        "flag_reasons": m.flag_reasons or {},
        "status": m.status,
        "unit": m.unit_code,
        "original_path": m.original_path,
        "original_name": m.original_name,
        "important": m.important,
        "recorded_start": iso(m.recorded_start, tz),
        "recorded_end": iso(m.recorded_end, tz),
        "device_start": _device_reading(m, tz),
        "device_start_text": m.device_start_text,
        "time_source": m.time_source,
        "time_readings": meta.get("time_readings") or {},
        "clock_offset_seconds": m.clock_offset_seconds,
        "clock_offset_source": m.clock_offset_source,
        "duration_seconds": m.duration_seconds,
        "width": m.width,
        "height": m.height,
        "index_state": m.index_state,
        "metadata": meta.get("technical") or {},
        "keyframe_stats": meta.get("keyframes") or {},
        "probe": m.probe,
        "keyframes": kfs,
        "contact_sheet": sheet,
        "thumbnail": photo_thumb,
        **_derivation(s, m),
    }


def _derivation(s: Session, m: Media) -> dict[str, Any]:
    """Issue 18: the original a derived (redacted) copy was made from, its approval, and an
    original's derived copies."""
    from disclose import derived as disclose_derived  # deferred: `media list` starts without the redaction stack

    red = disclose_derived.redaction_of(s, m.id)
    copies = s.execute(select(Media.id).where(Media.derived_from == m.id).order_by(Media.id)).scalars().all()
    return {"derived_from": m.derived_from, "derived_copies": list(copies),
            "redaction": None if red is None else {
                "id": red.id, "created_by": red.created_by, "created_at": red.created_at, "reason": red.reason,
                "approved": red.approved_at is not None, "approved_by": red.approved_by,
                "approved_at": red.approved_at}}


# --------------------------------------------------------------------------- human output
def _say(line: str) -> None:
    click.echo(safe(line))


def _print_detail(d: dict[str, Any]) -> None:
    """File names, readings and notes are data from a device: control characters are shown
    escaped (\\xNN), never sent to the terminal (issue 17)."""
    t = d["metadata"]
    dims = f"{d['width']}x{d['height']}" if d["width"] else ""
    codecs = "/".join(c for c in (t.get("video_codec"), t.get("audio_codec")) if c)
    dur = f"{d['duration_seconds']:.1f} s" if d["duration_seconds"] else ""
    _say(f"录像 Recording #{d['id']}  {d['kind']}  {dur}  {dims}  {codecs}".rstrip())
    _say(f"  SHA-256: {d['sha256']}  ({d['size']} bytes)")
    _say(f"  设备 Device: {d['device'] or '-'}   警号 Officer: {d['officer'] or '-'}   单位 Unit: {d['unit'] or '-'}")
    _say(f"  原始文件 Original: {d['original_path']}")
    _say(f"  开始 Start (corrected): {d['recorded_start'] or '未知 unknown'}")
    _say(f"  结束 End (corrected):   {d['recorded_end'] or '未知 unknown'}")
    _say(f"  设备时钟读数 Device clock read: {d['device_start'] or '-'}  "
               f"(来源 source: {d['time_source'] or 'none'})")
    off = d["clock_offset_seconds"]
    _say(f"  时钟误差 Clock offset: {'未知 unknown' if off is None else f'{off:+.3f} s'}"
               + (f"  ({d['clock_offset_source']})" if d["clock_offset_source"] else ""))
    for src, r in d["time_readings"].items():
        _say(f"    读数 reading {src}: {r['text']}" + (f"  — {r['note']}" if r.get("note") else ""))
    for f in d["flags"]:
        _say(f"  标记 Flag: {f}" + (f" — {d['flag_reasons'][f]}" if f in d["flag_reasons"] else ""))
    if t.get("location"):
        _say(f"  位置 Location: {t['location']}")
    _say(f"  索引 Index: {d['index_state']}   关键帧 Keyframes: {len(d['keyframes'])}")
    for k in d["keyframes"]:
        _say(f"    {k['offset_seconds']:9.3f} s  {k['reason'] or '':13s} {k['storage_key']}")
    if d["contact_sheet"]:
        _say(f"  缩略图总览 Contact sheet: {d['contact_sheet']}")
    if d["derived_from"]:
        r = d["redaction"] or {}
        _say(f"  衍生自 Derived from: #{d['derived_from']}   "
                   + (f"已批准 approved by {r.get('approved_by')}" if r.get("approved") else "未批准 NOT approved"))
    if d["derived_copies"]:
        _say(f"  衍生副本 Derived copies: {', '.join(f'#{i}' for i in d['derived_copies'])}")


# --------------------------------------------------------------------------- media
@click.group("media")
def media_group() -> None:
    """Recordings: list, show, get, keyframes / 录像列表、详情、下载与关键帧."""


@media_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.option("--limit", type=int, default=200, show_default=True, help="Newest N recordings (0 = all). / 最新的 N 条录像(0 为全部)")
@click.pass_obj
def media_list(app: Any, as_json: bool, limit: int) -> None:
    """List stored recordings, newest first / 列出录像."""
    tz = app.settings.tz
    with app.catalog.session() as s:
        acting(app, s, "view", "media:list")
        q = (select(Media, Device.serial, Officer.badge)
             .outerjoin(Device, Device.id == Media.device_id).outerjoin(Officer, Officer.id == Media.officer_id)
             .order_by(Media.recorded_start.desc().nulls_last(), Media.id.desc()))
        if limit > 0:
            q = q.limit(limit)
        rows = [media_row(m, serial, badge, tz) for m, serial, badge in s.execute(q).all()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no recordings / 没有录像")
        return
    table = Table("ID", "类型/Kind", "开始/Start", "设备/Device", "警号/Officer", "大小/Size", "SHA-256",
                  "标记/Flags")
    for r in rows:
        start = r["recorded_at"][:19].replace("T", " ") if r["recorded_at"] else "—"
        # Names and flags are data: never read as console markup.
        table.add_row(*(escape(safe(c)) for c in (str(r["id"]), r["kind"], start, r["device"] or "—", r["officer"] or "—",
                                            human_size(r["size"]), r["sha256"][:12], ", ".join(r["flags"]) or "—")))
    table.columns[0].justify = table.columns[5].justify = "right"
    Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False).print(table)
    click.echo(f"{len(rows)} recording(s); local times (UTC{app.settings.station.timezone}) / 本地时间")


def human_size(n: int | None) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 180.0 MiB, 2.1 GiB (the exact count is in --json)."""
    if n is None:
        return "—"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"


@media_group.command("show")
@click.argument("media_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def media_show(app: Any, media_id: int, as_json: bool) -> None:
    """Metadata, time sources and keyframes of one recording (logged as a view) / 录像详情."""
    with app.catalog.session() as s:
        actor = acting(app, s, "view", f"media:{media_id}")
        m, serial, badge = _load(s, media_id)
        detail = media_detail(s, m, serial, badge, app.settings.tz)
        custody_log.record(s, "viewed", actor=actor.username, media_id=m.id, subject=m.sha256,
                           detail={"via": "cli", "what": "metadata"})
    if as_json:
        echo_json(detail)
    else:
        _print_detail(detail)


@media_group.command("get")
@click.argument("media_ref")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write the recording's bytes to / 输出文件.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def media_get(app: Any, media_ref: str, out_file: Path, as_json: bool) -> None:
    """Write a stored recording's bytes (original or derived), checked and logged / 下载录像文件."""
    from disclose import derived as disclose_derived  # deferred, as in _derivation

    res = disclose_derived.copy_out(app, media_ref, out_file)
    if as_json:
        echo_json(res)
    else:
        click.echo(f"wrote {res['size']} bytes of recording {res['id']} to {res['out']} (sha256 {res['sha256']})")


@media_group.command("keyframes")
@click.argument("media_id", type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the keyframe JPEGs into (created). / 关键帧 JPEG 的输出目录(自动创建)")
@click.pass_obj
def media_keyframes(app: Any, media_id: int, out_dir: Path) -> None:
    """Write a recording's keyframes out as JPEG files (logged as an export) / 导出关键帧."""
    with app.catalog.session() as s:
        actor = acting(app, s, "export", f"media:{media_id}")
        m, _, _ = _load(s, media_id)
        kfs, _, _ = _keyframes(s, m.id)
        if not kfs:
            raise CustodyError(f"recording {media_id} has no keyframes (index state: {m.index_state})")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for i, k in enumerate(kfs, 1):
            name = f"media{m.id}_kf{i:02d}_{int(round(k['offset_seconds'] * 1000)):09d}ms.jpg"
            data = b"".join(app.store.iter_bytes(k["storage_key"]))
            (out_dir / name).write_bytes(data)
            written.append(name)
        custody_log.record(s, "exported", actor=actor.username, media_id=m.id, subject=m.sha256,
                           detail={"what": "keyframes", "files": written, "to": str(out_dir.resolve())})
    for name in written:
        click.echo(str(out_dir / name))


# --------------------------------------------------------------------------- index / reindex
def _enqueue_missing(s: Session) -> int:
    """Recordings waiting for an index with no open job (e.g. a job row lost by hand): queue them."""
    open_jobs = select(jobs.Job.media_id).where(jobs.Job.state.in_(jobs.OPEN_STATES), jobs.Job.media_id.isnot(None))
    ids = s.execute(select(Media.id).where(Media.status == "stored", Media.index_state == "pending",
                                           Media.id.notin_(open_jobs))).scalars().all()
    for mid in ids:
        jobs.enqueue(s, mid, "index")
    return len(ids)


def _station():  # noqa: ANN202 - the custody.station module
    """The station's job runners, imported when a command runs jobs: they pull in the indexer,
    ingest and retention workers (~0.2 s), which `custody media list/show` never need (issue 14)."""
    from custody import station  # deferred: heavy, see above

    return station


def _report(done: dict[str, int]) -> None:
    if not done:
        click.echo("没有待处理的任务 Nothing to do.")
        return
    click.echo("  ".join(f"{k}: {v}" for k, v in sorted(done.items())))


@click.command("index")
@click.option("--pending", is_flag=True, help="Run every pending (and expired) indexing job now. / 立即执行所有待处理(及租约过期)的索引任务")
@click.pass_obj
def index_cmd(app: Any, pending: bool) -> None:
    """Run the indexing queue by hand / 手动执行索引任务."""
    if not pending:
        raise click.UsageError("say what to index: --pending (or use `custody reindex ID...`)")
    with app.catalog.session() as s:
        actor = acting(app, s, "admin", "index:pending")
        queued = _enqueue_missing(s)
    if queued:
        click.echo(f"补建任务 Queued {queued} recording(s) that had no job.")
    _report(_station().run_pending(app, _station().worker_id("cli"), actor=actor.username))


@click.command("reindex")
@click.argument("media_ids", nargs=-1, type=int)
@click.option("--force", is_flag=True, help="Redo recordings already indexed (new keyframes supersede old). / 重做已索引的录像(新关键帧取代旧的)")
@click.pass_obj
def reindex_cmd(app: Any, media_ids: tuple[int, ...], force: bool) -> None:
    """Index recordings again: the IDs given, else every one not indexed (all with --force) / 重新索引."""
    kind = "reindex" if force else "index"
    with app.catalog.session() as s:
        actor = acting(app, s, "admin", "reindex")
        if media_ids:
            for mid in media_ids:
                if s.get(Media, mid) is None:
                    raise NotFound(f"no recording with id {mid}")
            ids = list(media_ids)
        else:
            q = select(Media.id).where(Media.status == "stored")
            if not force:
                q = q.where(Media.index_state != "done")
            ids = list(s.execute(q.order_by(Media.id)).scalars())
        job_ids = [jobs.enqueue(s, mid, kind).id for mid in ids]
    click.echo(f"任务 Queued {len(job_ids)} job(s) ({kind}).")
    _report(_station().run_pending(app, _station().worker_id("cli"), actor=actor.username, only_ids=job_ids))


# --------------------------------------------------------------------------- clock
def parse_device_time(text: str, tz: tzinfo) -> datetime:
    """An instant on the device clock: ISO 8601, with or without offset (default: station zone)."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise click.BadParameter(f"{text!r} is not a time like 2026-05-01T09:30:00+08:00") from e
    return dt if dt.tzinfo else dt.replace(tzinfo=tz)


@click.group("clock")
def clock_group() -> None:
    """Device clock corrections / 设备时钟校正."""


@clock_group.command("correct")
@click.argument("serial")
@click.option("--from", "valid_from", required=True, help="Start of the range, on the device clock (ISO 8601). / 区间起点,按设备时钟(ISO 8601)")
@click.option("--to", "valid_to", default=None, help="End of the range (exclusive); open-ended if omitted. / 区间终点(不含);省略则不设终点")
@click.option("--offset", "offset_seconds", required=True, type=float,
              help="Device clock minus true time, in seconds (positive: the device ran fast). / 设备时钟减真实时间,秒(正数:设备走快)")
@click.option("--reason", required=True, help="Why (kept in the custody log). / 原因(记入保管日志)")
@click.pass_obj
def clock_correct(app: Any, serial: str, valid_from: str, valid_to: str | None, offset_seconds: float,
                  reason: str) -> None:
    """Correct a device's clock over a time range; affected recordings are re-timed openly / 校正设备某时段的时钟;受影响的录像公开重新计时."""
    tz = app.settings.tz
    start = parse_device_time(valid_from, tz)
    end = parse_device_time(valid_to, tz) if valid_to else None
    with app.catalog.session() as s:
        actor = acting(app, s, "correct_clock", f"device:{serial}")
        from indexer.clock import add_correction  # deferred: loads the indexer's worker (light commands stay light)

        corr, retimed = add_correction(app, s, serial, start, end, offset_seconds, reason, actor.username)
        cid = corr.id
    click.echo(f"校正 Correction #{cid} for {serial}: offset {offset_seconds:+.3f} s; "
               f"重新计时 re-timed {len(retimed)} recording(s).")


@clock_group.command("revoke")
@click.argument("correction_id", type=int)
@click.option("--reason", required=True, help="Why the correction is withdrawn (kept in the custody log). / 撤销校正的原因(记入保管日志)")
@click.pass_obj
def clock_revoke(app: Any, correction_id: int, reason: str) -> None:
    """Withdraw a correction; affected recordings are re-timed without it / 撤销一次时钟校正;受影响的录像不再按其计时."""
    with app.catalog.session() as s:
        actor = acting(app, s, "correct_clock", f"clock_correction:{correction_id}")
        from indexer.clock import revoke_correction  # deferred, as above

        retimed = revoke_correction(app, s, correction_id, reason, actor.username)
    click.echo(f"撤销 Revoked correction #{correction_id}; 重新计时 re-timed {len(retimed)} recording(s).")


@clock_group.command("list")
@click.argument("serial", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def clock_list(app: Any, serial: str | None, as_json: bool) -> None:
    """Clock corrections, newest first (revoked ones included) / 时钟校正记录."""
    tz = app.settings.tz
    with app.catalog.session() as s:
        acting(app, s, "view", "clock:list")
        q = select(ClockCorrection, Device.serial).join(Device, Device.id == ClockCorrection.device_id)
        if serial:
            q = q.where(Device.serial == serial)
        rows = [{"id": c.id, "device": ser, "from": iso(c.valid_from, tz), "to": iso(c.valid_to, tz),
                 "offset_seconds": c.offset_seconds, "reason": c.reason, "created_by": c.created_by,
                 "created_at": iso(c.created_at, tz), "revoked_at": iso(c.revoked_at, tz)}
                for c, ser in s.execute(q.order_by(ClockCorrection.id.desc())).all()]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        state = f"撤销 revoked {r['revoked_at']}" if r["revoked_at"] else "有效 active"
        _say(f"#{r['id']}  {r['device']}  {r['from']} → {r['to'] or '…'}  {r['offset_seconds']:+.3f} s  "
             f"{state}  by {r['created_by']}: {r['reason']}")


COMMANDS = [media_group, index_cmd, reindex_cmd, clock_group]
