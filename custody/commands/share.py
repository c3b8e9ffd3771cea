"""`custody share create|list|show|revoke|receipt|grant|ungrant`: revocable links for recipients
with no account (docs/sharing.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from catalog.app import App
from catalog.accounts import resolve_actor
from custody.commands.common import acting, echo_json, iso, safe
from disclose import share as shares
from web.receipt import render_receipt


def _when(app: App, dt: Any) -> str:
    return dt.astimezone(app.settings.tz).strftime("%Y-%m-%d %H:%M") if dt else "—"


@click.group("share")
def share() -> None:
    """Share evidence through a revocable link / 分享证据（可撤销链接）."""


@share.command("create")
@click.argument("refs", nargs=-1, required=True, metavar="CASE|MEDIA...")
@click.option("--to", "recipient", required=True, help="Who receives it (name, office) / 接收方.")
@click.option("--kind", type=click.Choice(shares.KINDS), required=True,
              help="Recipient kind: public, court, prosecutor, reconsideration (行政复议), complainant / 接收方类型.")
@click.option("--expires", default="7d", show_default=True, help="Link lifetime: 30m, 12h, 7d, 2w / 有效期.")
@click.option("--code", is_flag=True, help="Protect the link with an 8-digit access code (printed once) / 访问码.")
@click.option("--downloads", type=int, default=None, help="At most N package downloads / 最多下载次数.")
@click.option("--originals/--redacted", "originals", default=False,
              help="Share the originals (court/prosecutor/reconsideration only, with the right) or approved "
                   "redacted copies (default) / 原始文件或处理副本.")
@click.option("--note", default=None, help="A note kept with the share (not shown to the recipient). / 随分享保存的备注(不向接收方显示)")
@click.option("--base-url", default=None, help="Address of the web app as the recipient reaches it "
                                                "(default: http://[web].host:[web].port). / 接收方访问网页应用的地址")
@click.option("--json", "as_json", is_flag=True, help="Print JSON. / 输出 JSON")
@click.pass_obj
def create(app: App, refs: tuple[str, ...], recipient: str, kind: str, expires: str, code: bool,
           downloads: int | None, originals: bool, note: str | None, base_url: str | None, as_json: bool) -> None:
    """Share a case (`case:NO` or its number) or recordings (`media:ID` or an id) / 创建分享."""
    span = shares.parse_expiry(expires)
    with app.catalog.session() as s:
        actor = acting(app, s, shares.SHARE_CAPABILITY, "share:new")
        made = shares.create_share(s, actor, list(refs), recipient=recipient, kind=kind,
                                   content="originals" if originals else "redacted", expires=span, code=code,
                                   max_downloads=downloads, note=note, via="cli")
        base = (base_url or f"http://{app.settings.web.host}:{app.settings.web.port}").rstrip("/")
        out = {"id": made.share.id, "url": base + made.path, "code": made.code, "recipient": made.share.recipient,
               "kind": kind, "content": made.share.content, "expires_at": iso(made.share.expires_at, app.settings.tz),
               "max_downloads": downloads,
               "items": [{"media_id": t.media.id, "sha256": t.media.sha256, "size": t.media.size,
                          "original_media_id": t.original.id if t.original else None} for t in made.targets],
               "skipped": made.skipped}
    if as_json:
        echo_json(out)
        return
    click.echo(f"share {out['id']}: {len(out['items'])} recording(s) ({out['content']}) for {safe(out['recipient'])} "
               f"({kind}), until {_when(app, made.share.expires_at)}")
    click.echo(f"link / 链接: {out['url']}")
    if made.code:
        click.echo(f"access code / 访问码: {made.code}")
    click.echo("The link and code are shown only now; give them to the recipient by separate channels. / "
               "链接与访问码仅显示这一次，请分别通过不同渠道告知接收方。")
    for x in made.skipped:
        click.echo(f"left out: recording {x['media_id']} ({x['reason']})")


@share.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON. / 输出 JSON")
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """Shares (your own; administrators and auditors see all) / 分享列表."""
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)
        if not (actor.can(shares.SHARE_CAPABILITY) or actor.can("audit")):
            acting(app, s, shares.SHARE_CAPABILITY, "shares")
        rows = [shares.summary(s, sh) for sh in shares.list_shares(s, actor)]
    if as_json:
        echo_json([{k: v for k, v in r.items() if k != "events"} for r in rows])
        return
    click.echo(f"{'ID':>5} {'STATE':<8} {'KIND':<15} {'CONTENT':<9} {'ITEMS':>5} {'DL':>5} {'EXPIRES':<16} "
               f"{'BY':<12} RECIPIENT")
    for r in rows:
        dl = f"{r['downloads']}/{r['max_downloads']}" if r["max_downloads"] else str(r["downloads"])
        click.echo(f"{r['id']:>5} {r['state']:<8} {r['kind']:<15} {r['content']:<9} {len(r['items']):>5} {dl:>5} "
                   f"{_when(app, r['expires_at']):<16} {safe(r['created_by']):<12} {safe(r['recipient'])}")


@share.command("show")
@click.argument("share_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON. / 输出 JSON")
@click.pass_obj
def show(app: App, share_id: int, as_json: bool) -> None:
    """A share, its items and every view, download and refusal / 分享详情与访问记录."""
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)
        r = shares.summary(s, shares.get_share(s, actor, share_id))
    if as_json:
        echo_json(r)
        return
    click.echo(f"share {r['id']} · {r['state']} · {r['content']} for {safe(r['recipient'])} ({r['kind']})")
    click.echo(f"by {safe(r['created_by'])} at {_when(app, r['created_at'])}; expires {_when(app, r['expires_at'])}; "
               f"code {'yes' if r['code'] else 'no'}; downloads {r['downloads']}"
               + (f" of {r['max_downloads']}" if r["max_downloads"] else ""))
    if r["revoked_at"]:
        click.echo(f"revoked by {safe(r['revoked_by'])} at {_when(app, r['revoked_at'])}: {safe(r['revoke_reason'])}")
    for it in r["items"]:
        orig = f" (original {it['original']['media_id']} sha256 {it['original']['sha256']})" if it["original"] else ""
        click.echo(f"  #{it['media_id']} {it['sha256']} {it['size']} B {safe(it['name'])}{orig}")
    click.echo("events / 记录:")
    for e in r["events"]:
        d = e["detail"]
        extra = d.get("reason") or d.get("user_agent") or ""
        click.echo(f"  {e['seq']:>6} {_when(app, e['at'])} {e['action']:<17} {e['outcome']:<8} {safe(e['actor']):<12} "
                   f"{e['remote_addr'] or '':<15} {safe(str(extra))[:80]}")


@share.command("revoke")
@click.argument("share_id", type=int)
@click.option("--reason", default="", help="Why / 撤销理由.")
@click.pass_obj
def revoke(app: App, share_id: int, reason: str) -> None:
    """Revoke a link now; the recipient sees that it was revoked / 撤销分享."""
    with app.catalog.session() as s:
        actor = acting(app, s, shares.SHARE_CAPABILITY, f"share:{share_id}")
        sh = shares.revoke(s, actor, share_id, reason, via="cli")
        click.echo(f"share {sh.id} revoked at {_when(app, sh.revoked_at)}")


@share.command("receipt")
@click.argument("share_id", type=int)
@click.option("--lang", type=click.Choice(["zh-CN", "en"]), default="zh-CN", show_default=True,
              help="Language of the receipt / 回执语言")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the HTML receipt here (default: standard output). / HTML 回执写入此文件(默认标准输出)")
@click.pass_obj
def receipt(app: App, share_id: int, lang: str, out: Path | None) -> None:
    """The printable receipt: items, SHA-256, sizes, who shared, to whom, downloads / 分享回执."""
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)
        r = shares.summary(s, shares.get_share(s, actor, share_id))
    html = render_receipt(app, r, lang)
    if out is None:
        click.echo(html)
    else:
        out.write_text(html, encoding="utf-8")
        click.echo(f"receipt of share {share_id} written to {out}")


@share.command("grant")
@click.argument("username")
@click.option("--reason", required=True, help="Why this account may share originals / 授权理由.")
@click.pass_obj
def grant(app: App, username: str, reason: str) -> None:
    """Let an account share originals with courts, prosecutors and reconsideration bodies (administrators) / 授权."""
    with app.catalog.session() as s:
        actor = acting(app, s, "users", f"account:{username}")
        shares.grant(s, actor, username, reason)
    click.echo(f"{username} may now share originals / 已授权")


@share.command("ungrant")
@click.argument("username")
@click.pass_obj
def ungrant(app: App, username: str) -> None:
    """Take the right to share originals away (administrators) / 取消授权."""
    with app.catalog.session() as s:
        actor = acting(app, s, "users", f"account:{username}")
        n = shares.ungrant(s, actor, username)
    click.echo(f"{username}: {n} grant(s) revoked")


@share.command("grants")
@click.pass_obj
def grants_(app: App) -> None:
    """Who may share originals / 原始文件分享授权列表."""
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)
        if not actor.can("audit"):
            acting(app, s, "users", "share_grants")
        rows = [(g.id, name, g.granted_by, g.granted_at, g.revoked_at, g.reason) for g, name in shares.grants(s)]
    for gid, name, by, at, revoked, why in rows:
        state = f"revoked {_when(app, revoked)}" if revoked else "active"
        click.echo(f"{gid:>4} {safe(name):<16} by {safe(by):<12} {_when(app, at)} {state:<24} {safe(why)}")


COMMANDS = [share]
