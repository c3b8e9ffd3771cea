"""`custody serve`, `custody users add|disable|reset|list` and `custody export`."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor, ROLES, add_account, get_account, os_user, require, resolve_actor
from catalog.app import App
from catalog import custody_log
from catalog.access_review import review
from catalog.duty import enforce_duty, station_today
from core.errors import ConfigError, CustodyError
from custody.commands.common import echo_json, iso, safe
from catalog.models import Account, utcnow
from web.accounts_admin import account_count, apply_change, parse_units, reset_mfa, reset_password, set_role
from web.app import create_app
from web.hardening import check_transport
from web.export import export_case


def _read_password(from_stdin: bool) -> str:
    """One line from stdin (scripts), else an interactive prompt typed twice."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CustodyError("--password-stdin: no password on standard input")
        return line
    return click.prompt("Password / 密码", hide_input=True, confirmation_prompt=True)


def _admin(app: App, s: Session, capability: str = "users") -> Actor:
    """The acting account (--user or the OS user's), refused and logged unless it may `capability`."""
    actor = resolve_actor(s, app.user)  # type: ignore[attr-defined]
    require(s, actor, capability, subject="accounts")
    return actor


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: [web].host). / 监听地址(默认 [web].host)")
@click.option("--port", type=int, default=None, help="Port (default: [web].port). / 端口(默认 [web].port)")
@click.option("--certfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS certificate chain (PEM); with --keyfile the app speaks HTTPS (default: [web].certfile). / TLS 证书链(PEM);与 --keyfile 同用时启用 HTTPS(默认 [web].certfile)")
@click.option("--keyfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS private key (PEM) (default: [web].keyfile). / TLS 私钥(PEM)(默认 [web].keyfile)")
@click.pass_obj
def serve(app: App, host: str | None, port: int | None, certfile: Path | None, keyfile: Path | None) -> None:
    """Start the web app for reviewers, administrators and auditors / 启动网页服务."""
    import uvicorn  # deferred: the server is loaded only by `serve`

    cfg = app.settings.web
    certfile = certfile or cfg.certfile
    keyfile = keyfile or cfg.keyfile
    if bool(certfile) != bool(keyfile):
        raise ConfigError("--certfile and --keyfile go together / 证书与私钥须同时给出")
    tls = {}
    if certfile and keyfile:
        cert, key = (p if p.is_absolute() else app.settings.home / p for p in (certfile, keyfile))
        for p in (cert, key):
            if not p.is_file():
                raise ConfigError(f"{p}: no such file / 文件不存在")
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    check_transport(app, tls=bool(tls))  # production mode: HTTPS, or a declared TLS proxy
    app.catalog  # open (and migrate) before the first request, so errors show here
    # Forwarded headers are honoured by the app itself, and only from [web].trusted_proxies
    # when [web].behind_tls_proxy is set (web/hardening.py).
    uvicorn.run(create_app(app), host=host or cfg.host, port=port or cfg.port, proxy_headers=False,
                server_header=False, log_level="info", **tls)

@click.group("users")
def users() -> None:
    """Accounts and roles / 账号管理."""

@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="The account's role / 账号角色")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin. / 从标准输入读取一行作为密码")
@click.option("--os-user", "os_user_name", default=None, help="Operating-system user mapped to this account. / 映射到该账号的操作系统用户")
@click.option("--units", default="", help="Comma-separated unit codes the account covers (default: all). / 该账号负责的单位代码,逗号分隔(默认全部)")
@click.option("--display-name", default=None, help="Name shown in pages (e.g. the officer's name). / 页面中显示的名称(如执法人员姓名)")
@click.option("--badge", default=None,
              help="The officer number of this account's holder (an inspector sees that officer's recordings). / 账号持有人的执法人员编号(执法人员账号可查看本人的录像)")
@click.pass_obj
def users_add(app: App, name: str, role: str, password_stdin: bool, os_user_name: str | None, units: str,
              display_name: str | None, badge: str | None) -> None:
    """Add an account.  The very first account (bootstrap) must be an administrator / 新增账号;第一个账号必须是管理员."""
    with app.catalog.session() as s:
        if account_count(s) == 0:
            if role != "administrator":
                raise CustodyError("the first account must be an administrator (it manages the others)")
            by = f"bootstrap:{os_user()}"
        else:
            by = _admin(app, s).username
        password = _read_password(password_stdin)
        add_account(s, name, role, password=password, display_name=display_name, os_user_name=os_user_name,
                    units=parse_units(units), badge=badge, created_by=by)
    click.echo(f"account {name} ({role}) added")

@users.command("disable")
@click.argument("name")
@click.pass_obj
def users_disable(app: App, name: str) -> None:
    """Disable an account and end its login sessions (the record stays) / 停用账号并结束其登录会话(记录保留)."""
    with app.catalog.session() as s:
        actor = _admin(app, s)
        apply_change(s, get_account(s, name), "disable", actor.username)
    click.echo(f"account {name} disabled")

@users.command("reset")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from one line of stdin. / 从标准输入读取一行作为新密码")
@click.pass_obj
def users_reset(app: App, name: str, password_stdin: bool) -> None:
    """Set a new password, clear a lockout and end the account's login sessions / 设置新密码、解除锁定并结束其登录会话."""
    with app.catalog.session() as s:
        actor = _admin(app, s)
        acc = get_account(s, name)
        reset_password(s, acc, _read_password(password_stdin), actor.username)
    click.echo(f"password of {name} reset")

@users.command("list")
@click.pass_obj
def users_list(app: App) -> None:
    """List accounts (administrators and auditors) / 列出账号(管理员和审计员)."""
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)  # type: ignore[attr-defined]
        require(s, actor, "users" if not actor.can("audit") else "audit", subject="accounts")
        rows = list(s.execute(select(Account).order_by(Account.username)).scalars())
    now = utcnow()
    click.echo(f"{'USER':<20} {'ROLE':<14} {'STATE':<9} {'UNITS':<24} {'BADGE':<10} OS-USER")
    for a in rows:
        state = "disabled" if a.disabled else ("locked" if a.locked_until and a.locked_until > now else "active")
        click.echo(f"{a.username:<20} {a.role:<14} {state:<9} {','.join(a.units or []) or '*':<24} "
                   f"{a.officer_badge or '':<10} {a.os_user or ''}")

@users.command("review")
@click.option("--days", type=int, default=None, help="Unused for this many days (default: [web].review_unused_days). / 未使用天数阈值(默认 [web].review_unused_days)")
@click.option("--changes-days", type=int, default=30, show_default=True, help="Role and account changes this recent. / 列出该天数内的角色和账号变更")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def users_review(app: App, days: int | None, changes_days: int, as_json: bool) -> None:
    """Access review: privileged, unused and disabled accounts, recent role changes / 账号审查."""
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)  # type: ignore[attr-defined]
        require(s, actor, "users" if not actor.can("audit") else "audit", subject="accounts")
    with app.catalog.session() as s:  # access follows duty: lapsed certificates are disabled first
        lapsed = enforce_duty(s, station_today(app.settings.tz), by=actor.username)
    with app.catalog.session() as s:
        result = review(s, utcnow(), unused_days=days or app.settings.web.review_unused_days,
                        changes_days=changes_days)
        custody_log.record(s, "viewed", actor=actor.username, subject="access-review",
                           detail={"unused_days": result.unused_days, "disabled_now": [u for u, _ in lapsed]})
    if as_json:
        echo_json(result.as_dict())
        return
    tz = app.settings.tz

    def when(dt) -> str:  # noqa: ANN001
        return iso(dt, tz) or "never / 从未"

    click.echo("Privileged accounts / 特权账号")
    for a in result.privileged:
        click.echo(f"  {safe(a['username']):<20} {a['role']:<14} mfa={'yes' if a['mfa'] else 'no':<4} "
                   f"last login {when(a['last_login_at'])}")
    click.echo(f"Unused for {result.unused_days} days / 超过 {result.unused_days} 天未使用")
    for a in result.unused:
        click.echo(f"  {safe(a['username']):<20} {a['role']:<14} last login {when(a['last_login_at'])}")
    click.echo("Disabled / 已停用")
    for a in result.disabled:
        click.echo(f"  {safe(a['username']):<20} {a['role']:<14} {when(a['disabled_at'])} "
                   f"{safe(a['disabled_reason'] or '')}")
    click.echo(f"Role and account changes, last {result.changes_days} days / 近期变更")
    for c in result.changes:
        click.echo(f"  {when(c['at'])} {safe(c['account']):<20} {c['change']:<18} {c['role'] or '':<14} "
                   f"by {safe(c['by'])} {safe(c['reason'] or '')}")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_obj
def users_role(app: App, name: str, role: str) -> None:
    """Change an account's role (an admin_change custody event) / 修改角色."""
    with app.catalog.session() as s:
        actor = _admin(app, s)
        set_role(s, get_account(s, name), role, actor.username)
    click.echo(f"account {name} is now {role}")


@users.command("mfa-reset")
@click.argument("name")
@click.pass_obj
def users_mfa_reset(app: App, name: str) -> None:
    """Forget an account's TOTP secret and recovery codes (a lost phone); it enrols again at its next login / 清除账号的 TOTP 密钥和恢复码(手机丢失);下次登录时重新绑定."""
    with app.catalog.session() as s:
        actor = _admin(app, s)
        reset_mfa(s, get_account(s, name), actor.username)
    click.echo(f"second factor of {name} reset; it is set up again at the next login")


@click.command("export")
@click.argument("case_no", metavar="CASE")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New (or empty) directory to write the bag into. / 写入证据包的新目录(或空目录)")
@click.pass_obj
def export(app: App, case_no: str, out: Path) -> None:
    """Export a case as a BagIt package a court can verify offline / 导出案件证据包."""
    with app.catalog.session() as s:
        actor = resolve_actor(s, app.user)  # type: ignore[attr-defined]
        require(s, actor, "export", subject=f"case:{case_no}")
    result = export_case(app, actor, case_no, out, via="cli")
    click.echo(f"exported case {result.case_no}: {result.recordings} recording(s), "
               f"{result.payload_bytes} bytes -> {result.bag_dir}")
    click.echo(f"verify: cd {result.bag_dir} && sha256sum -c tagmanifest-sha256.txt && "
               "sha256sum -c manifest-sha256.txt")


COMMANDS = [serve, users, export]
