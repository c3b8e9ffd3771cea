"""Subcommands of this package (registered by custody.cli)."""
from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this package's subcommands to `cli`."""
