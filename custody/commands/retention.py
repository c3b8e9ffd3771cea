"""Subcommands of this package (registered by custody.cli).

custody retention explain|plan|show|approve|sweep
custody hold add|release|list
custody tag add|remove
custody storage selftest
"""
from __future__ import annotations

import json
from datetime import datetime, timezone, tzinfo
from typing import Any

import click

from catalog.accounts import Actor, require, resolve_actor
from custody.commands.common import acting, echo_json, iso
from core.errors import CustodyError
from catalog import custody_log
from catalog.models import RetentionPlan, utcnow
from retention.load import decide_one, find_media
from retention.rules import rules_for
from retention.plan import approve_plan, create_plan, get_plan, plan_items
from retention.sweep import sweep
from retention.holds import add_hold, hold_json, list_holds, mirror_hold, release_hold
from retention.lock import apply_retention
from retention.tags import add_tag, remove_tag
from retention.selftest import run_selftest

TARGETS = ("media", "case", "device", "officer")


# --------------------------------------------------------------------------- helpers
def _fmt(dt: datetime | None, tz: tzinfo, empty: str = "permanent / 永久保留") -> str:
    if dt is None:
        return empty
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %z")








def _parse_at(text: str | None) -> datetime:
    if not text:
        return utcnow()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise CustodyError(f"--at {text!r} is not an ISO date-time like 2027-01-01T00:00+08:00") from e
    if dt.tzinfo is None:
        raise CustodyError("--at needs a UTC offset (e.g. +08:00): a bare time is ambiguous")
    return dt


# --------------------------------------------------------------------------- retention
def explain_json(app: Any, session: Any, media: Any, now: datetime) -> dict[str, Any]:
    rules = rules_for(app)
    d = decide_one(session, media, rules, now)
    label = rules.get(d.rule)
    return {
        "media_id": media.id, "sha256": media.sha256, "status": media.status, "as_of": iso(now),
        "keep_until": iso(d.keep_until), "permanent": d.permanent, "rule": d.rule,
        "rule_label": label.label if label else d.rule, "rule_label_zh": label.label_zh if label else "",
        "reason": d.reason, "held": d.held, "expired": d.expired,
        "holds": [{"id": h.id, "target_kind": h.target_kind, "target_ref": h.target_ref, "reason": h.reason,
                   "created_by": h.created_by, "created_at": iso(h.created_at)} for h in d.holds],
        "rules": [{"rule": a.rule, "keep_until": iso(a.keep_until), "reason": a.reason} for a in d.applied],
        "lock_until": iso(media.lock_until), "legal_hold_applied": bool(media.legal_hold_applied),
        "purged_at": iso(media.purged_at), "rules_digest": rules.digest,
    }


def _print_explain(e: dict[str, Any], tz: tzinfo) -> None:
    def local(s: str | None) -> str:
        return _fmt(datetime.fromisoformat(s) if s else None, tz)

    click.echo(f"recording / 录像 {e['media_id']}  sha256 {e['sha256']}  status {e['status']}")
    click.echo(f"keep until / 保留至: {local(e['keep_until'])}")
    click.echo(f"rule / 规则: {e['rule']} — {e['rule_label']} {e['rule_label_zh']}")
    click.echo(f"why / 依据: {e['reason']}")
    click.echo(f"held / 保全: {'yes / 是' if e['held'] else 'no / 否'}")
    for h in e["holds"]:
        click.echo(f"  hold #{h['id']} on {h['target_kind']} {h['target_ref']} by {h['created_by']}: {h['reason']}")
    click.echo("every applicable rule / 全部适用规则:")
    for r in e["rules"]:
        click.echo(f"  {r['rule']:<20} {local(r['keep_until'])}  {r['reason']}")
    state = "may be deleted by an approved plan / 可由已批准的计划删除" if e["expired"] else "kept / 保留"
    click.echo(f"as of / 截至 {local(e['as_of'])}: {state}")
    lock = datetime.fromisoformat(e["lock_until"]) if e["lock_until"] else None
    click.echo(f"store lock / 存储锁定至: {_fmt(lock, tz, 'none / 无')}"
               f"  legal hold flag / 法律保全标记: {'on' if e['legal_hold_applied'] else 'off'}")


def plan_json(session: Any, plan: RetentionPlan) -> dict[str, Any]:
    items = plan_items(session, plan.id)
    return {
        "id": plan.id, "state": plan.state, "created_by": plan.created_by, "created_at": iso(plan.created_at),
        "as_of": iso(plan.as_of), "rules_digest": plan.rules_digest, "approved_by": plan.approved_by,
        "approved_at": iso(plan.approved_at), "swept_at": iso(plan.swept_at),
        "summary": {k: v for k, v in plan.summary.items() if k != "rules"},
        "items": [{"id": i.id, "media_id": i.media_id, "keep_until": iso(i.keep_until), "rule": i.rule,
                   "reason": i.reason, "change": i.change, "state": i.state, "note": i.note} for i in items],
    }


def _print_plan(p: dict[str, Any], tz: tzinfo) -> None:
    s = p["summary"]
    click.echo(f"retention plan / 保留期计划 {p['id']} ({p['state']}) by {p['created_by']} "
               f"as of {_fmt(datetime.fromisoformat(p['as_of']), tz)}")
    c = s.get("counts", {})
    click.echo(f"stored {c.get('stored', 0)}: would delete / 拟删除 {c.get('deletable', 0)}, held / 保全 "
               f"{c.get('held', 0)}, permanent / 永久 {c.get('permanent', 0)}, not yet due / 未到期 "
               f"{c.get('not_yet_due', 0)}, store-locked / 存储锁定 {c.get('store_locked', 0)}")
    click.echo(f"compared with plan / 对比计划: {s.get('baseline_plan') or 'none (first plan)'}")
    for rc in s.get("rules_changes", []):
        click.echo(f"  RULE {rc['change'].upper()}: {rc['class']} "
                   f"{rc.get('keep_before', '')} -> {rc.get('keep_after', '')}")
    if s.get("changes"):
        click.echo("changes / 变化: " + ", ".join(f"{k} {v}" for k, v in sorted(s["changes"].items())))
    for li in s.get("store_locked_items", []):
        click.echo(f"  due but locked in the store until {li['lock_until']}: media {li['media_id']} ({li['change']})")
    for d in s.get("no_longer_listed", []):
        click.echo(f"  no longer listed: media {d['media_id']} ({d['why']})")
    for i in p["items"]:
        mark = "  !! " if i["change"] in ("rule_shortened", "keep_until_shortened") else "     "
        click.echo(f"{mark}media {i['media_id']:<8} {i['change'] or '':<21} {i['state']:<8} {i['reason']}")


@click.group("retention")
def retention() -> None:
    """Retention rules, plans and purges / 保留期与清理."""

@retention.command("explain")
@click.argument("media_ref", metavar="MEDIA")
@click.option("--at", "at", default=None, help="Decide as of this instant (ISO, with offset); read-only. / 按该时刻判断(ISO,带时区);只读")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def explain(app: Any, media_ref: str, at: str | None, as_json: bool) -> None:
    """Why a recording is kept, until when, and by which rule / 录像为何保存、保存到何时、依据哪条规则."""
    with app.catalog.session() as s:
        acting(app, s, "view", f"media:{media_ref}")
        data = explain_json(app, s, find_media(s, media_ref), _parse_at(at))
    if as_json:
        echo_json(data)
    else:
        _print_explain(data, app.settings.tz)

@retention.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def plan_cmd(app: Any, as_json: bool) -> None:
    """List what would be deleted now, why, and what changed since the last plan / 列出现在将被删除的录像、原因及与上次计划相比的变化."""
    with app.catalog.session() as s:
        actor = acting(app, s, "retention", "retention:plan")
        data = plan_json(s, create_plan(app, s, actor))
    if as_json:
        echo_json(data)
    else:
        _print_plan(data, app.settings.tz)

@retention.command("show")
@click.argument("plan_id", type=int, metavar="PLAN")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def show(app: Any, plan_id: int, as_json: bool) -> None:
    """Show a plan and its items (what an approver reviews) / 显示一个清理计划及其条目(供审批人审阅)."""
    with app.catalog.session() as s:
        acting(app, s, "retention", f"plan:{plan_id}")
        data = plan_json(s, get_plan(s, plan_id))
    if as_json:
        echo_json(data)
    else:
        _print_plan(data, app.settings.tz)

@retention.command("approve")
@click.argument("plan_id", type=int, metavar="PLAN")
@click.pass_obj
def approve(app: Any, plan_id: int) -> None:
    """Approve a draft plan (an administrator other than its creator) / 批准清理计划草案(须由创建人以外的管理员)."""
    with app.catalog.session() as s:
        actor = acting(app, s, "retention", f"plan:{plan_id}")
        plan = approve_plan(app, s, actor, plan_id)
        click.echo(f"plan {plan.id} approved by {actor.username} / 计划已批准")

@retention.command("sweep")
@click.option("--plan", "plan_id", type=int, default=None, help="Plan to sweep (default: latest approved). / 要执行的清理计划(默认最近批准的)")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def sweep_cmd(app: Any, plan_id: int | None, as_json: bool) -> None:
    """Delete what the approved plan lists, re-checking each item now / 删除已批准计划所列录像,逐条重新核查."""
    with app.catalog.session() as s:
        actor = acting(app, s, "retention", "retention:sweep")
    rep = sweep(app, actor, plan_id=plan_id)
    data = {"plan_id": rep.plan_id, "deleted": rep.deleted, "rules_changed": rep.rules_changed,
            "kept": [{"media_id": m, "why": w} for m, w in rep.kept],
            "failed": [{"media_id": m, "why": w} for m, w in rep.failed]}
    if as_json:
        echo_json(data)
        return
    click.echo(f"plan {rep.plan_id}: deleted / 已删除 {len(rep.deleted)}, kept / 保留 {len(rep.kept)}, "
               f"refused by store / 存储拒绝 {len(rep.failed)}")
    for m, w in rep.kept + rep.failed:
        click.echo(f"  media {m}: {w}")


# --------------------------------------------------------------------------- holds
@click.group("hold")
def hold() -> None:
    """Legal holds / 法律保全: block deletion of a recording, case, device or officer."""

@hold.command("add")
@click.argument("kind", type=click.Choice(TARGETS))
@click.argument("ref")
@click.option("--reason", required=True, help="Why the hold is placed (kept in the custody log). / 保全的原因(记入保管日志)")
@click.pass_obj
def add(app: Any, kind: str, ref: str, reason: str) -> None:
    """Place a hold: KIND is media|case|device|officer, REF its id/case no/serial/badge / 设置保全:KIND 为 media|case|device|officer,REF 为其编号."""
    with app.catalog.session() as s:
        actor = acting(app, s, "hold", f"{kind}:{ref}")
        h = add_hold(s, actor, kind, ref, reason)
        n = mirror_hold(app, s, h, actor).covered
        click.echo(f"hold #{h.id} placed on {kind} {h.target_ref} by {actor.username}; "
                   f"covers {n} stored recording(s) / 已保全")

@hold.command("release")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True, help="Why the hold is released (kept in the custody log). / 解除保全的原因(记入保管日志)")
@click.pass_obj
def release(app: Any, hold_id: int, reason: str) -> None:
    """Release a hold (it stays on record, with who and why) / 解除保全(记录保留,含操作人和原因)."""
    with app.catalog.session() as s:
        actor = acting(app, s, "hold", f"hold:{hold_id}")
        h = release_hold(s, actor, hold_id, reason)
        n = mirror_hold(app, s, h, actor).checked
        click.echo(f"hold #{h.id} released by {actor.username}; {n} recording(s) re-checked / 已解除")

@hold.command("list")
@click.option("--all", "include_released", is_flag=True, help="Include released holds. / 包括已解除的保全")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def list_cmd(app: Any, include_released: bool, as_json: bool) -> None:
    """List holds (standing ones unless --all) / 列出保全(默认只列有效的)."""
    with app.catalog.session() as s:
        acting(app, s, "view", "holds")
        rows = [hold_json(h) for h in list_holds(s, include_released)]
    if as_json:
        echo_json(rows)
        return
    tz = app.settings.tz
    for h in rows:
        state = "standing / 有效" if h["active"] else f"released by {h['released_by']}: {h['release_reason']}"
        click.echo(f"#{h['id']:<4} {h['target_kind']:<8} {h['target_ref']:<20} by {h['created_by']} "
                   f"{_fmt(datetime.fromisoformat(h['created_at']), tz)}  {h['reason']}  [{state}]")
    if not rows:
        click.echo("no holds / 无保全")


# --------------------------------------------------------------------------- tags
@click.group("tag")
def tag() -> None:
    """Reviewer flags with retention meaning / 审核标记."""

@tag.command("add")
@click.argument("media_ref", metavar="MEDIA")
@click.argument("tag_name", metavar="TAG")
@click.option("--reason", required=True, help="Why the recording is flagged (kept in the custody log). / 加标记的原因(记入保管日志)")
@click.pass_obj
def add(app: Any, media_ref: str, tag_name: str, reason: str) -> None:
    """Flag a recording (e.g. obstruction, complaint, accident) / 为录像加标记(如妨碍执法、投诉、事故)."""
    with app.catalog.session() as s:
        actor = acting(app, s, "tag", f"media:{media_ref}")
        m = find_media(s, media_ref)
        add_tag(s, actor, m, tag_name, reason, rules_for(app))
        d = apply_retention(app, s, m, actor=actor.username)
        click.echo(f"recording {m.id} tagged {tag_name}; "
                   f"keep until {_fmt(d.keep_until, app.settings.tz)} ({d.rule})")

@tag.command("remove")
@click.argument("media_ref", metavar="MEDIA")
@click.argument("tag_name", metavar="TAG")
@click.option("--reason", required=True, help="Why the flag is removed (kept in the custody log). / 去除标记的原因(记入保管日志)")
@click.pass_obj
def remove(app: Any, media_ref: str, tag_name: str, reason: str) -> None:
    """Remove a flag (the next retention plan shows any shortened keep-until) / 去除标记(下一个清理计划会显示缩短的保存期)."""
    with app.catalog.session() as s:
        actor = acting(app, s, "tag", f"media:{media_ref}")
        m = find_media(s, media_ref)
        remove_tag(s, actor, m, tag_name, reason)
        d = apply_retention(app, s, m, actor=actor.username)
        click.echo(f"tag {tag_name} removed from recording {m.id}; "
                   f"keep until {_fmt(d.keep_until, app.settings.tz)} ({d.rule})")


# --------------------------------------------------------------------------- storage
@click.group("storage")
def storage() -> None:
    """Object store checks / 存储."""


@storage.command("selftest")
@click.option("--seconds", default=3.0, show_default=True, help="How long the probe is locked. / 探测对象的锁定秒数")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def selftest(app: Any, seconds: float, as_json: bool) -> None:
    """Prove the store refuses to delete, overwrite or unlock a locked object / 验证存储拒绝删除、覆盖或解锁已锁定的对象."""
    with app.catalog.session() as s:
        actor = acting(app, s, "admin", "storage:selftest")
    rep = run_selftest(app.store, app.settings.storage.object_lock_mode, seconds)
    with app.catalog.session() as s:
        custody_log.record(s, "storage_selftest", actor=actor.username, outcome="ok" if rep.ok else "failed",
                           subject=f"store:{rep.store}", detail=rep.as_json())
    if as_json:
        echo_json(rep.as_json())
    else:
        click.echo(f"storage selftest / 存储自检: {rep.store} (mode {rep.mode})")
        for c in rep.checks:
            click.echo(f"  {c.status.upper():<5} {c.name:<26} {c.detail}")
        click.echo("PASSED / 通过" if rep.ok else "FAILED / 未通过: this store does not protect locked evidence")
    if not rep.ok:
        raise SystemExit(1)


COMMANDS = [retention, hold, tag, storage]
