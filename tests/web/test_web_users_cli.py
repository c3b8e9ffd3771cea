"""`custody users add|disable|reset|list`: bootstrap, then administrators only."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from catalog.accounts import check_password
from custody.cli import cli
from catalog.models import Account, LoginSession, utcnow
from web_support import events


def run(app, *args: str, input: str | None = None):  # noqa: ANN001, ANN201, A002
    return CliRunner().invoke(cli, ["--config", str(app.settings.config_path), *args], input=input)


def account(app, name: str) -> Account:  # noqa: ANN001
    with app.catalog.session() as s:
        return s.execute(select(Account).where(Account.username == name)).scalar_one()


def test_users_lifecycle(make_app, catalog_url: str) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url)
    # Bootstrap: the first account is made by anyone, and must be an administrator.
    r = run(app, "users", "add", "chief", "--role", "reviewer", "--password-stdin", input="password-1\n")
    assert r.exit_code == 1 and "first account must be an administrator" in r.output
    r = run(app, "users", "add", "chief", "--role", "administrator", "--password-stdin", input="password-1\n")
    assert r.exit_code == 0, r.output
    assert account(app, "chief").created_by.startswith("bootstrap:")
    # After that: only an administrator adds accounts.
    r = run(app, "users", "add", "rev", "--role", "reviewer", "--password-stdin", input="password-2\n")
    assert r.exit_code == 4  # the OS user maps to no account
    r = run(app, "--user", "chief", "users", "add", "rev", "--role", "reviewer", "--units", "U1, U2",
            "--os-user", "rev_os", "--password-stdin", input="password-2\n")
    assert r.exit_code == 0, r.output
    rev = account(app, "rev")
    assert rev.units == ["U1", "U2"] and rev.os_user == "rev_os" and rev.created_by == "chief"
    assert check_password(rev.password_hash, "password-2") and "password-2" not in rev.password_hash
    r = run(app, "--user", "rev", "users", "add", "x", "--role", "administrator", "--password-stdin", input="p" * 9)
    assert r.exit_code == 4 and "may not users" in r.output
    r = run(app, "--user", "chief", "users", "add", "short", "--role", "auditor", "--password-stdin", input="abc\n")
    assert r.exit_code == 1 and "8 characters" in r.output
    # Prompted password (typed twice).
    r = run(app, "--user", "chief", "users", "add", "aud", "--role", "auditor", input="password-3\npassword-3\n")
    assert r.exit_code == 0, r.output
    # Reset: new password, lockout cleared, sessions ended.
    with app.catalog.session() as s:
        acc = s.execute(select(Account).where(Account.username == "rev")).scalar_one()
        acc.failed_logins, acc.locked_until = 2, utcnow()
        s.add(LoginSession(token_hash="a" * 64, account_id=acc.id, csrf_token="c", expires_at=utcnow()))
    r = run(app, "--user", "chief", "users", "reset", "rev", "--password-stdin", input="password-4\n")
    assert r.exit_code == 0, r.output
    rev = account(app, "rev")
    assert check_password(rev.password_hash, "password-4") and rev.failed_logins == 0 and rev.locked_until is None
    with app.catalog.session() as s:
        assert s.execute(select(LoginSession)).scalar_one().revoked_at is not None
    # Disable; the last administrator cannot be disabled.
    assert run(app, "--user", "chief", "users", "disable", "rev").exit_code == 0
    assert account(app, "rev").disabled
    r = run(app, "--user", "chief", "users", "disable", "chief")
    assert r.exit_code == 1 and "last enabled administrator" in r.output
    assert run(app, "--user", "rev", "users", "list").exit_code == 4  # disabled accounts act no more
    r = run(app, "--user", "aud", "users", "list")
    assert r.exit_code == 0 and "rev" in r.output and "disabled" in r.output and "U1,U2" in r.output
    changes = [(e.actor, e.detail.get("change")) for e in events(app, action="admin_change")]
    assert ("chief", "account_added") in changes and ("chief", "password_reset") in changes
    assert ("chief", "account_disabled") in changes
    assert any(e.actor == "rev" for e in events(app, outcome="refused"))
