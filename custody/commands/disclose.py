"""Disclosure commands: `custody redact ...` and `custody redaction approve|show ...`.

A redaction makes a new derived recording (the original is never modified); a second
reviewer approves it before it may be disclosed to the public.  Both are custody events.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from custody.commands.common import echo_json, safe
from disclose import derived, redact
from disclose.faces import DEFAULT_INPUT_WIDTH, DEFAULT_THRESHOLD


def _plan(start: str | None, end: str | None, faces: bool, boxes: Path | None, mute: tuple[str, ...],
          still: str | None, detect_every: int | None) -> redact.Plan:
    return redact.Plan(start=redact.parse_time(start) if start else 0.0,
                       end=redact.parse_time(end) if end else None, faces=faces,
                       boxes=redact.load_boxes(boxes) if boxes else [],
                       mute=[redact.parse_range(m) for m in mute],
                       still=redact.parse_time(still) if still is not None else None, detect_every=detect_every)


@click.command("redact")
@click.argument("media")
@click.option("--from", "start", default=None, help="Segment start on the recording's timeline (s, m:ss) / 起点.")
@click.option("--to", "end", default=None, help="Segment end (s, m:ss) / 终点.")
@click.option("--faces", is_flag=True, help="Blur faces found by the detector / 自动模糊人脸.")
@click.option("--boxes", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help='JSON list of {"t","x","y","w","h",["until"],["label"]} boxes to blur and follow / 手动遮挡框.')
@click.option("--mute", multiple=True, help="Audio range T1-T2 to silence (repeatable) / 静音区间.")
@click.option("--still", default=None, help="Make a JPEG still at this time instead of a clip / 截取静帧.")
@click.option("--reason", required=True, help="Why (kept in the redaction log) / 理由.")
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
              help="Face detector score threshold / 人脸检测阈值.")
@click.option("--detect-width", type=int, default=DEFAULT_INPUT_WIDTH, show_default=True,
              help="Frames are scaled to this width for face detection / 检测缩放宽度.")
@click.option("--detect-every", type=int, default=None,
              help="Detect on every Nth frame (default: frame rate / 6) / 每 N 帧检测一次.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def redact_cmd(app: Any, media: str, start: str | None, end: str | None, faces: bool, boxes: Path | None,
               mute: tuple[str, ...], still: str | None, reason: str, threshold: float, detect_width: int,
               detect_every: int | None, as_json: bool) -> None:
    """Make a redacted derived copy of MEDIA (id or SHA-256) / 生成处理后的衍生副本(原件不变)."""
    plan = _plan(start, end, faces, boxes, mute, still, detect_every)
    made = derived.make_redaction(app, media, plan, reason, threshold=threshold, input_width=detect_width)
    out = made.as_json()
    if as_json:
        echo_json(out)
        return
    d, o = out["derived"], out["original"]
    click.echo(f"derived recording {d['id']} ({d['kind']}, {d['size']} bytes) sha256 {d['sha256']}")
    click.echo(f"  from original {o['id']} sha256 {o['sha256']} (unchanged / 原件未改动)")
    click.echo(f"  key {safe(d['storage_key'])}")
    click.echo("  not approved yet: a second reviewer runs `custody redaction approve "
               f"{d['id']}` / 待另一名审核人批准")


@click.group("redaction")
def redaction_group() -> None:
    """Redacted copies: show the log, approve / 处理副本:查看记录、批准."""


@redaction_group.command("approve")
@click.argument("derived_id")
@click.option("--note", default="", help="Kept in the custody log / 备注.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def redaction_approve(app: Any, derived_id: str, note: str, as_json: bool) -> None:
    """Approve the derived recording DERIVED_ID (not its author) / 批准处理副本(须非制作人)."""
    r = derived.approve(app, derived_id, note=note)
    if as_json:
        echo_json(derived.redaction_json(r))
        return
    click.echo(f"redaction {r.id}: derived recording {r.derived_media_id} approved by {safe(r.approved_by)} "
               f"(made by {safe(r.created_by)}) / 已批准")


@redaction_group.command("show")
@click.argument("derived_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def redaction_show(app: Any, derived_id: str, as_json: bool) -> None:
    """The redaction log of a derived recording / 查看处理记录."""
    with app.catalog.session() as s:
        derived.require_view(app, s, derived_id)
        data = derived.redaction_json(derived.find_redaction(s, derived_id))
    if as_json:
        echo_json(data)
        return
    state = f"approved by {data['approved_by']} at {data['approved_at']}" if data["approved"] else "NOT approved / 未批准"
    click.echo(f"redaction {data['id']}: derived {data['derived_media_id']} from original {data['original_media_id']}")
    click.echo(f"  by {safe(data['created_by'])} at {data['created_at']}: {safe(data['reason'])}")
    click.echo(f"  {state}")
    lg = data["log"] or {}
    if lg.get("faces"):
        det = lg["faces"].get("detector") or {}
        click.echo(f"  faces: {det.get('package')} threshold {det.get('threshold')}, "
                   f"{len(lg['faces'].get('detections') or [])} detection frames")
    for b in lg.get("boxes") or []:
        click.echo(f"  box {b['given']}: followed {len(b['track'])} samples, lost {b['lost_frames']} frames")
    for a, b in lg.get("mute") or []:
        click.echo(f"  muted {a}-{b} s")


COMMANDS = [redact_cmd, redaction_group]
