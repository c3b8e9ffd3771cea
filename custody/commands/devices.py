"""Machine credentials (issue 15): terminals' upload tokens and the enforcement system's API tokens.

    custody devices enrol SERIAL [--json]      a terminal's upload token, printed once
    custody devices revoke SERIAL
    custody devices list [--json]
    custody api-token issue ACCOUNT [--name TEXT] [--json]   an API token acting as ACCOUNT, printed once
    custody api-token revoke ID
    custody api-token list [--json]
"""
from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select

from catalog import tokens
from catalog.models import Account, ApiToken, Device, DeviceToken
from custody.commands.common import acting, echo_json, iso


@click.group("devices")
def devices() -> None:
    """Enrolled terminals and their upload tokens / 终端登记与上传令牌."""


@devices.command("enrol")
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True, help='Print {"serial": ..., "token": ...}. / 输出设备编号与令牌')
@click.pass_obj
def devices_enrol(app: Any, serial: str, as_json: bool) -> None:
    """Give a terminal its upload token (shown once; a new one revokes the old) / 登记终端并签发上传令牌."""
    with app.catalog.session() as s:
        actor = acting(app, s, "admin", f"device:{serial}")
        token, created, revoked = tokens.enrol_device(s, serial, actor.username, app.station)
    if as_json:
        click.echo(json.dumps({"serial": serial.strip(), "token": token}, ensure_ascii=False))
        return
    if created:
        click.echo(f"note: device {serial} was not in the catalog; recorded as a terminal / 设备未登记过，已按终端记录",
                   err=True)
    if revoked:
        click.echo(f"note: {len(revoked)} earlier token(s) of {serial} revoked / 旧令牌已作废", err=True)
    click.echo(f"upload token for {serial} (shown only now; store it on the terminal) / 上传令牌（仅显示一次）:")
    click.echo(token)


@devices.command("revoke")
@click.argument("serial")
@click.pass_obj
def devices_revoke(app: Any, serial: str) -> None:
    """Revoke a terminal's upload token / 作废终端上传令牌."""
    with app.catalog.session() as s:
        actor = acting(app, s, "admin", f"device:{serial}")
        ids = tokens.revoke_device(s, serial, actor.username, app.station)
    click.echo(f"revoked {len(ids)} upload token(s) of {serial} / 已作废")


@devices.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list. / 输出 JSON 列表")
@click.pass_obj
def devices_list(app: Any, as_json: bool) -> None:
    """Enrolled devices and their tokens (never the tokens themselves) / 已登记终端."""
    tz = app.settings.tz
    with app.catalog.session() as s:
        acting(app, s, "admin", "devices")
        rows = s.execute(select(DeviceToken, Device.serial).join(Device, Device.id == DeviceToken.device_id)
                         .order_by(Device.serial, DeviceToken.id)).all()
        out = [{"serial": serial, "token_id": t.id, "created_at": iso(t.created_at, tz), "created_by": t.created_by,
                "revoked_at": iso(t.revoked_at, tz), "last_used_at": iso(t.last_used_at, tz)} for t, serial in rows]
    if as_json:
        echo_json(out)
        return
    for r in out:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "live"
        click.echo(f"{r['serial']}\ttoken {r['token_id']}\t{state}\tlast used {r['last_used_at'] or '—'}")


@click.group("api-token")
def api_token() -> None:
    """API tokens for the enforcement system / 接口令牌."""


@api_token.command("issue")
@click.argument("account")
@click.option("--name", default=None, help="What the token is for (e.g. the enforcement system). / 令牌用途(如执法系统)")
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ..., "account": ..., "token": ...}. / 输出令牌编号、账号与令牌')
@click.pass_obj
def api_token_issue(app: Any, account: str, name: str | None, as_json: bool) -> None:
    """Issue an API token acting as ACCOUNT (its role decides what it may do; shown once) / 签发接口令牌."""
    with app.catalog.session() as s:
        actor = acting(app, s, "users", f"account:{account}")
        token, token_id = tokens.issue_api_token(s, account, name, actor.username, app.station)
    if as_json:
        click.echo(json.dumps({"id": token_id, "account": account, "token": token}, ensure_ascii=False))
        return
    click.echo(f"API token {token_id} for {account} (shown only now) / 接口令牌（仅显示一次）:")
    click.echo(token)


@api_token.command("revoke")
@click.argument("token_id", type=int)
@click.pass_obj
def api_token_revoke(app: Any, token_id: int) -> None:
    """Revoke an API token / 作废接口令牌."""
    with app.catalog.session() as s:
        actor = acting(app, s, "users", f"api-token:{token_id}")
        tokens.revoke_api_token(s, token_id, actor.username, app.station)
    click.echo(f"API token {token_id} revoked / 已作废")


@api_token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list. / 输出 JSON 列表")
@click.pass_obj
def api_token_list(app: Any, as_json: bool) -> None:
    """API tokens (never the tokens themselves) / 接口令牌列表."""
    tz = app.settings.tz
    with app.catalog.session() as s:
        acting(app, s, "users", "api-tokens")
        rows = s.execute(select(ApiToken, Account.username).join(Account, Account.id == ApiToken.account_id)
                         .order_by(ApiToken.id)).all()
        out = [{"id": t.id, "account": u, "name": t.name, "created_at": iso(t.created_at, tz),
                "revoked_at": iso(t.revoked_at, tz), "last_used_at": iso(t.last_used_at, tz)} for t, u in rows]
    if as_json:
        echo_json(out)
        return
    for r in out:
        click.echo(f"{r['id']}\t{r['account']}\t{r['name'] or ''}\t{'revoked' if r['revoked_at'] else 'live'}")


COMMANDS = [devices, api_token]
