"""`custody serve`, `custody users add|disable|reset|list` and `custody export`."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor, ROLES, add_account, get_account, os_user, require, resolve_actor
from catalog.app import App
from core.errors import CustodyError
from catalog.models import Account, utcnow
from web.accounts_admin import account_count, apply_change, parse_units, reset_password
from web.app import create_app
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
@click.option("--host", default=None, help="Address to listen on (default: [web].host).")
@click.option("--port", type=int, default=None, help="Port (default: [web].port).")
@click.pass_obj
def serve(app: App, host: str | None, port: int | None) -> None:
    """Start the web app for reviewers, administrators and auditors / 启动网页服务."""
    import uvicorn  # deferred: the server is loaded only by `serve`


    app.catalog  # open (and migrate) before the first request, so errors show here
    uvicorn.run(create_app(app), host=host or app.settings.web.host, port=port or app.settings.web.port,
                proxy_headers=False, log_level="info")

@click.group("users")
def users() -> None:
    """Accounts and roles / 账号管理."""

@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.option("--os-user", "os_user_name", default=None, help="Operating-system user mapped to this account.")
@click.option("--units", default="", help="Comma-separated unit codes the account covers (default: all).")
@click.option("--display-name", default=None, help="Name shown in pages (e.g. the officer's name).")
@click.option("--badge", default=None,
              help="The officer number of this account's holder (an inspector sees that officer's recordings).")
@click.pass_obj
def users_add(app: App, name: str, role: str, password_stdin: bool, os_user_name: str | None, units: str,
              display_name: str | None, badge: str | None) -> None:
    """Add an account.  The very first account (bootstrap) must be an administrator."""
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
    """Disable an account and end its login sessions (the record stays)."""
    with app.catalog.session() as s:
        actor = _admin(app, s)
        apply_change(s, get_account(s, name), "disable", actor.username)
    click.echo(f"account {name} disabled")

@users.command("reset")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from one line of stdin.")
@click.pass_obj
def users_reset(app: App, name: str, password_stdin: bool) -> None:
    """Set a new password, clear a lockout and end the account's login sessions."""
    with app.catalog.session() as s:
        actor = _admin(app, s)
        acc = get_account(s, name)
        reset_password(s, acc, _read_password(password_stdin), actor.username)
    click.echo(f"password of {name} reset")

@users.command("list")
@click.pass_obj
def users_list(app: App) -> None:
    """List accounts (administrators and auditors)."""
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

@click.command("export")
@click.argument("case_no", metavar="CASE")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New (or empty) directory to write the bag into.")
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
