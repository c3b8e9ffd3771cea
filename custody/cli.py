"""`custody`: one CLI with subcommands.  Each package registers its own commands."""
from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from catalog.app import App
from sqlalchemy.exc import InterfaceError, OperationalError

from core.errors import CatalogUnavailable, CustodyError
from core.settings import load_settings

# Packages that add subcommands, in the order of the data's path.
COMMAND_MODULES = (
    "custody.commands.ingest",
    "custody.commands.media",
    "custody.commands.cases",
    "custody.commands.reports",
    "custody.commands.retention",
    "custody.commands.web",
)


class CustodyGroup(click.Group):
    """Turns the tool's own errors into a one-line message and a meaningful exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CustodyError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except (OperationalError, InterfaceError) as e:
            # The catalog database did not answer (server down, wrong URL, disk gone).
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            click.echo(f"error: the catalog database is unreachable: {reason}", err=True)
            sys.exit(CatalogUnavailable.exit_code)


@click.group(cls=CustodyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML config (else $CUSTODY_CONFIG, else the shipped config/custody.toml).")
@click.option("--user", "user", default=None, help="Act as this account (else the OS user's account).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, user: str | None) -> None:
    """Custody — body-camera and media evidence ingestion / 执法音视频证据管理."""
    settings = load_settings(config_file)
    app = App(settings)
    app.user = user  # type: ignore[attr-defined]
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(cli)


_register()


def main() -> None:
    cli(prog_name="custody")


if __name__ == "__main__":
    main()
